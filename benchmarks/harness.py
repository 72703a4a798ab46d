"""What every benchmark shares: measuring a process, the event-loop lag, child interpreters, results.

Measurements come from ``/proc`` and the standard library only (no psutil): the figures must not
depend on a package the provider does not need. Steps that must start from a clean interpreter
(fresh memory, fresh imports) run in a child process that talks to the parent in JSON lines over
its stdout, marked so that anything else a library prints there is ignored.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import gc
import json
import math
import os
import secrets
import select
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from wavespeed_emulator import EmulatorProcess

REPO = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO / "benchmarks" / "results" / "latest.json"
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# -- statistics -----------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


def spread(values: Iterable[float]) -> dict[str, float]:
    """p50, p99 and max of ``values``, the summary every latency in the report gets."""
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else math.nan,
        "count": len(ordered),
    }


# -- one process's resources ----------------------------------------------------------------------


def _status_kib(field_name: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now (VmRSS)."""
    return _status_kib("VmRSS", pid) * KIB


def peak_rss_bytes(pid: int | str = "self") -> int:
    """The resident set's high-water mark (VmHWM) since start or :func:`reset_peak_rss`."""
    return _status_kib("VmHWM", pid) * KIB


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where not allowed.

    It lets a child measure the peak of one step alone, not of the imports before it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may contain spaces; the fields after its ')' are fixed.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the event loop -------------------------------------------------------------------------------


class LoopLagMonitor:
    """A coroutine that asks to wake every ``period`` seconds and records how late it wakes.

    The lateness is the longest time one step of some other coroutine held the loop: what every
    other trigger in the same triggerer would have waited.
    """

    def __init__(self, period: float = 0.010) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.lags

    async def _tick(self) -> None:
        clock = time.perf_counter
        while True:
            asked = clock()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, clock() - asked - self.period))


class GcPauses:
    """Records how long each garbage collection stops the interpreter, while installed.

    In a process that has Airflow imported, one full (generation 2) collection walks hundreds of
    thousands of objects; it is the usual cause of the longest event-loop lags, whoever's code runs.
    """

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def summary(self) -> dict[str, float]:
        """Counts and milliseconds: all collections, and the full (generation 2) ones."""
        full = [seconds for generation, seconds in self.pauses if generation == 2]
        every = [seconds for _, seconds in self.pauses]
        return {
            "collections": len(every),
            "total_ms": sum(every) * 1000,
            "max_ms": max(every, default=0.0) * 1000,
            "full_collections": len(full),
            "full_max_ms": max(full, default=0.0) * 1000,
        }


# -- the environment ------------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_airflow_home() -> Iterator[Path]:
    """Point Airflow at a fresh, temporary home for the block, before anything imports it.

    Benchmarks must neither read a developer's ``airflow.cfg`` (it would change what is measured)
    nor write into ``~/airflow``. Children inherit the environment; it is restored afterwards.
    """
    overrides = ("AIRFLOW_HOME", "AIRFLOW__CORE__LOAD_EXAMPLES")
    previous = {name: os.environ.get(name) for name in overrides}
    with tempfile.TemporaryDirectory(prefix="wavespeed-bench-airflow-home-") as home:
        os.environ.update({"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        try:
            yield Path(home)
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def bench_api_key() -> str:
    return f"bench-{secrets.token_hex(12)}"


def connection_env(conn_id: str, base_url: str, api_key: str) -> dict[str, str]:
    """The environment variable that defines a WaveSpeed connection without a database."""
    connection = {"conn_type": "wavespeed", "host": base_url, "password": api_key}
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection)}


@contextlib.contextmanager
def spawned_emulator(**config: Any) -> Iterator[EmulatorProcess]:
    """A WaveSpeed emulator in its own process (so its CPU is not the benchmark's), on loopback."""
    from wavespeed_emulator import EmulatorConfig, WaveSpeedEmulator

    process = WaveSpeedEmulator.spawn(EmulatorConfig(api_key=bench_api_key(), host="127.0.0.1", **config))
    try:
        yield process
    finally:
        process.terminate()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, on our own repo
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_tree_is_dirty() -> bool:
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(status.strip())


def compile_bytecode() -> float:
    """Compile every module the children import, as installing a wheel does; returns the seconds taken.

    A deployment runs from compiled bytecode. Without it (an editable checkout, or
    ``PYTHONDONTWRITEBYTECODE=1`` in the environment) every fresh interpreter compiles Airflow from
    source, which more than doubles ``import airflow.sdk`` and would make every import-time figure
    measure the compiler instead.
    """
    started = time.monotonic()
    roots = [Path(sysconfig.get_paths()["purelib"]), REPO / "airflow_provider_wavespeed", REPO / "emulator"]
    for root in roots:
        compileall.compile_dir(root, quiet=1, workers=os.cpu_count() or 1)
    return time.monotonic() - started


# -- child interpreters ---------------------------------------------------------------------------

_MESSAGE_MARK = "@@wavespeed-bench "


def send_to_parent(message: dict[str, Any]) -> None:
    """In a child: hand one JSON message to the parent (a marked stdout line)."""
    sys.stdout.write(_MESSAGE_MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def receive_from_parent() -> dict[str, Any] | None:
    """In a child: the next JSON message the parent wrote to our stdin; None once it closed it."""
    line = sys.stdin.readline()
    if not line:
        return None
    message: dict[str, Any] = json.loads(line)
    return message


class ChildProcess:
    """A fresh interpreter running ``python -m <module> --child [args]``, spoken to in JSON lines.

    Its stdout is read unbuffered, line by line, so that a message that arrives together with log
    lines is never left waiting in a buffer that ``select`` cannot see. Its stderr goes to a file,
    shown in the error if it fails: a child that logs thousands of lines (the trigger logs each
    status change) must not flood the report.
    """

    def __init__(self, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.module = module
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module and flags
            [sys.executable, "-m", module, "--child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        self._unread = b""
        self._other_output: list[str] = []

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, message: dict[str, Any]) -> None:
        stdin = self._require(self._process.stdin)
        stdin.write(json.dumps(message).encode() + b"\n")
        stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any]:
        """The child's next message; raises with its stderr if it dies or stays silent."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                raise self._failure(f"sent nothing for {timeout:.0f} s")
            if not line:
                self._process.wait()
                raise self._failure(f"exited with {self._process.returncode}")
            if line.startswith(_MESSAGE_MARK):
                message: dict[str, Any] = json.loads(line[len(_MESSAGE_MARK) :])
                return message
            self._other_output = [*self._other_output[-20:], line]

    def _next_line(self, deadline: float) -> str | None:
        """The next line of stdout; "" at its end, None if none is complete by ``deadline``."""
        stdout = self._require(self._process.stdout)
        while b"\n" not in self._unread:
            ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                rest, self._unread = self._unread, b""
                return rest.decode(errors="replace")
            self._unread += chunk
        line, _, self._unread = self._unread.partition(b"\n")
        return line.decode(errors="replace") + "\n"

    def finish(self, timeout: float = 60.0) -> None:
        """Wait for a clean exit."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            returncode = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(f"did not exit within {timeout:.0f} s") from None
        if returncode != 0:
            raise self._failure(f"exited with {returncode}")
        self._close()

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def _close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout, self._stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def _failure(self, what: str) -> RuntimeError:
        """The error to raise, with the child's last output; the child is stopped first."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read()[-4000:].decode(errors="replace")
        self._close()
        return RuntimeError(
            f"Benchmark child `python -m {self.module} --child` {what}.\nstdout:\n{''.join(self._other_output)}\n"
            f"stderr:\n{stderr}"
        )

    @staticmethod
    def _require(stream: IO[bytes] | None) -> IO[bytes]:
        assert stream is not None
        return stream


# -- results --------------------------------------------------------------------------------------


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


def fmt(value: float, unit: str = "", digits: int = 2) -> str:
    """A number for the table: NaN (not measured) as "n/a", big ones without decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.{digits}f}"
    return f"{text} {unit}".rstrip() if unit else text


def vs(value: float, baseline: float, unit: str, digits: int = 2) -> str:
    """ "0.30x (0.41 ms)": the ratio to the same-run baseline first, the absolute value beside it."""
    relative = ratio(value, baseline)
    shown = "n/a" if math.isnan(relative) else f"{relative:.2f}x"
    return f"{shown} ({fmt(value, unit, digits)})"


@dataclass
class Target:
    """One target of the issue, measured: ``met`` is None when it could not be measured here."""

    requirement: str
    measured: str
    met: bool | None
    why: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class SectionResult:
    """One section of the report: its table, how it was measured, its targets and raw figures."""

    key: str
    title: str
    method: str
    table: Table
    targets: list[Target]
    figures: dict[str, Any]
    wall_seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"### {self.title}", "", self.table.markdown(), "", f"How: {self.method}", ""]
        for target in self.targets:
            parts.append(f"- {target.verdict}: {target.requirement}: {target.measured}")
            if target.why and target.met is not True:
                parts.append(f"  ({target.why})")
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = [{**asdict(target), "verdict": target.verdict} for target in self.targets]
        return _finite(data)


def _finite(value: Any) -> Any:
    """JSON has no NaN: unmeasured figures become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_results(document: dict[str, Any], path: Path = RESULTS_FILE) -> None:
    """Write the JSON atomically: a run that dies half-way leaves the previous figures intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    partial.replace(path)
