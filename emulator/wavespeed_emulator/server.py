"""Running the emulator: in a background thread (tests, notebooks), in the foreground (the CLI), or
as a child process (tests that need a separate process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from aiohttp import web

from wavespeed_emulator.admin import ADMIN_PREFIX
from wavespeed_emulator.app import OUTAGE, build_app
from wavespeed_emulator.cli import config_to_argv
from wavespeed_emulator.service import WaveSpeedService

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from types import TracebackType

    from wavespeed_emulator.config import EmulatorConfig
    from wavespeed_emulator.faults import FaultConfig
    from wavespeed_emulator.outage import OutagePlan

T = TypeVar("T")

_LISTENING_PATTERN = re.compile(r"WaveSpeed emulator listening on (http://\S+)")
SHUTDOWN_GRACE_SECONDS = 1.0
"""How long a stop waits for requests in flight, such as a sync-mode submit, before closing them."""
_CONTROL_TIMEOUT_SECONDS = 30.0
ACCESS_LOGGER = "wavespeed_emulator.access"
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf "%{User-Agent}i"'
"""Client, request line, status, size, seconds, client name: never a header that carries the key."""


@dataclass
class _Running:
    runner: web.AppRunner
    service: WaveSpeedService
    base_url: str


async def _start(config: EmulatorConfig, data_dir: Path, *, access_log: bool = False) -> _Running:
    service = WaveSpeedService(config, data_dir)
    service.resume()
    runner = web.AppRunner(
        build_app(service),
        access_log=logging.getLogger(ACCESS_LOGGER) if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=config.backlog, reuse_address=True)
    await site.start()
    runner.app[OUTAGE].attach(runner, backlog=config.backlog)
    host, port = runner.addresses[0][:2]
    return _Running(runner, service, f"http://{f'[{host}]' if ':' in host else host}:{port}")


@contextlib.contextmanager
def _data_dir(config: EmulatorConfig) -> Iterator[Path]:
    """The configured data directory, or a temporary one that is removed afterwards."""
    if config.data_dir is not None:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        yield config.data_dir
        return
    with tempfile.TemporaryDirectory(prefix="wavespeed-emulator-") as directory:
        yield Path(directory)


async def serve_until_signalled(config: EmulatorConfig, *, access_log: bool = False) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, announcing the URL on stdout first.

    :param access_log: log one line per request (`ACCESS_LOG_FORMAT`) to `ACCESS_LOGGER`.
    """
    with _data_dir(config) as data_dir:
        running = await _start(config, data_dir, access_log=access_log)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"WaveSpeed emulator listening on {running.base_url}", flush=True)
        await stop.wait()
        await running.runner.cleanup()


class WaveSpeedEmulator:
    """An emulator serving from a daemon thread with its own event loop.

    ``stats()``, ``set_faults()`` and ``reset()`` run on the emulator's loop, so they are safe to
    call from any thread at any time.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: _Running | None = None
        self._resources = contextlib.ExitStack()

    @property
    def base_url(self) -> str:
        return self._require_running().base_url

    @property
    def api_key(self) -> str:
        return self.config.api_key

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("The emulator is already running")
        data_dir = self._resources.enter_context(_data_dir(self.config))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wavespeed-emulator", daemon=True)
        self._thread.start()
        try:
            self._running = self._on_loop(_start(self.config, data_dir))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and remove a temporary data directory; safe to repeat."""
        if self._loop is None or self._thread is None:
            return
        if self._running is not None:
            self._on_loop(self._running.runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = self._running = None
        self._resources.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        outage = self._require_running().runner.app[OUTAGE]
        return self._with_service(lambda service: {**service.stats_snapshot(), "outages": outage.history})

    def set_faults(self, faults: FaultConfig) -> None:
        self._with_service(lambda service: service.faults.configure(faults))

    def begin_outage(self, plan: OutagePlan) -> dict[str, Any]:
        """Start a full outage (see `wavespeed_emulator.outage`); returns its record."""
        outage = self._require_running().runner.app[OUTAGE]

        async def begin() -> dict[str, Any]:
            return outage.begin(plan)

        return self._on_loop(begin())

    def reset(self) -> None:
        self._with_service(lambda service: service.reset())

    def expire_uploads(self) -> int:
        """Delete every uploaded file, as WaveSpeed does after 7 days; return how many there were."""
        return self._with_service(lambda service: service.media.expire_uploads())

    @staticmethod
    def spawn(
        config: EmulatorConfig, *, startup_timeout: float = 20.0, log_file: Path | None = None
    ) -> EmulatorProcess:
        """Start an emulator in a child process through the CLI; see `EmulatorProcess`."""
        return EmulatorProcess.start(config, startup_timeout=startup_timeout, log_file=log_file)

    def _with_service(self, operation: Callable[[WaveSpeedService], T]) -> T:
        service = self._require_running().service

        async def operate() -> T:
            return operation(service)

        return self._on_loop(operate())

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(_CONTROL_TIMEOUT_SECONDS)

    def _require_running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("The emulator is not running; call start() first")
        return self._running


class EmulatorProcess:
    """An emulator in a child process, started through the CLI and controlled over HTTP.

    The API key travels in the child's environment, never on its command line, where any user of
    the machine could read it.
    """

    def __init__(self, process: subprocess.Popen[str], base_url: str, api_key: str) -> None:
        self.process = process
        self.base_url = base_url
        self.api_key = api_key

    @classmethod
    def start(
        cls, config: EmulatorConfig, *, startup_timeout: float = 20.0, log_file: Path | None = None
    ) -> EmulatorProcess:
        """Run ``python -m wavespeed_emulator`` and wait for its listening line.

        :param log_file: where the child writes its log, access lines included; its stderr if None.
        """
        logging_argv = [] if log_file is None else ["--log-file", str(log_file)]
        process = subprocess.Popen(  # noqa: S603 - this interpreter, this package, our own flags
            [sys.executable, "-m", "wavespeed_emulator", *config_to_argv(config), *logging_argv],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "WAVESPEED_API_KEY": config.api_key},
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], startup_timeout)
        line = process.stdout.readline() if ready else ""
        match = _LISTENING_PATTERN.search(line)
        if match is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"The emulator process did not announce its URL within {startup_timeout}s: {line!r}")
        return cls(process, match.group(1), config.api_key)

    @property
    def pid(self) -> int:
        return self.process.pid

    def terminate(self, timeout: float = 10.0) -> int:
        """Stop the process with SIGTERM (SIGKILL after ``timeout``) and return its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.terminate()

    def stats(self) -> dict[str, Any]:
        return self._admin("GET", "stats")

    def set_faults(self, faults: FaultConfig) -> None:
        self._admin("POST", "faults", faults.to_json())

    def reset(self) -> None:
        self._admin("POST", "reset", {})

    def begin_outage(self, plan: OutagePlan) -> dict[str, Any]:
        """Start a full outage (see `wavespeed_emulator.outage`); returns its record."""
        record: dict[str, Any] = self._admin("POST", "outage", plan.to_json())["outage"]
        return record

    def expire_uploads(self) -> int:
        return int(self._admin("POST", "uploads/expire", {})["expired"])

    def _admin(self, method: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - base_url is the http:// URL the child printed
            f"{self.base_url}{ADMIN_PREFIX}{name}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        # No proxy: the emulator is on this machine, whatever the environment says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=_CONTROL_TIMEOUT_SECONDS) as response:
            result: dict[str, Any] = json.load(response)
            return result
