"""A full outage on demand, for a set duration: what a client must ride out without failing its tasks.

Two modes, as a real outage shows itself to a client:

- ``unavailable``: the gateway is up but the service behind it is not. Every request but the admin
  endpoints is answered ``503`` with WaveSpeed's envelope (code 5003 is WaveSpeed's own "Service
  Unavailable: try again later"; the HTTP status is what a gateway sends), optionally with
  ``Retry-After``. Nothing is processed: a submit creates nothing, a result poll reads nothing.
- ``refused``: nothing listens. The listening socket is really closed, so connects are refused by
  the operating system, and open keep-alive connections are closed too; when the time is up the
  socket is opened again on the same port. The admin endpoints are unreachable meanwhile.

Predictions keep running at "WaveSpeed" throughout, as they would: an outage of the API is not a
loss of the work already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wavespeed_emulator.envelope import failure

if TYPE_CHECKING:
    from collections.abc import Mapping

UNAVAILABLE_MESSAGE = "Service Unavailable: The service is temporarily unavailable. Please try again later."
# The admin answer that starts a refused outage is sent before the socket closes.
REFUSE_AFTER_SECONDS = 0.2


class OutageMode(StrEnum):
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"


@dataclass(frozen=True)
class OutagePlan:
    """One outage: its mode, its length, and the ``Retry-After`` a 503 carries (none if None)."""

    mode: OutageMode
    seconds: float
    retry_after_seconds: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutagePlan:
        """Build from ``{"mode": ..., "seconds": ..., "retry_after_seconds": ...}``; ValueError names the field."""
        unknown = set(data) - {"mode", "seconds", "retry_after_seconds"}
        if unknown:
            raise ValueError(f"unknown outage settings {sorted(unknown)}; known: mode, seconds, retry_after_seconds")
        mode = data.get("mode")
        if mode not in set(OutageMode):
            raise ValueError(f"mode={mode!r} must be one of {', '.join(OutageMode)}")
        seconds = data.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 3600:
            raise ValueError(f"seconds={seconds!r} must be a number of seconds in (0, 3600]")
        retry_after = data.get("retry_after_seconds")
        if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int)):
            raise ValueError(f"retry_after_seconds={retry_after!r} must be a whole number of seconds")
        return cls(OutageMode(mode), float(seconds), retry_after)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "seconds": self.seconds, "retry_after_seconds": self.retry_after_seconds}


class Outage:
    """The emulator's outage switch: which outage is on, and the work of closing and reopening the socket."""

    def __init__(self) -> None:
        self._plan: OutagePlan | None = None
        self._ends_at = 0.0
        self._runner: web.AppRunner | None = None
        self._backlog = 128
        self._refusal: asyncio.Task[None] | None = None
        self.history: list[dict[str, Any]] = []
        """Every outage begun: its plan and wall-clock ``started_at`` / ``ends_at`` (Unix seconds)."""

    def attach(self, runner: web.AppRunner, *, backlog: int) -> None:
        """The runner whose listening socket a refused outage closes and reopens (with ``backlog``)."""
        self._runner = runner
        self._backlog = backlog

    def current(self) -> OutagePlan | None:
        """The outage in force now, if any."""
        if self._plan is not None and time.time() >= self._ends_at and self._refusal is None:
            self._plan = None
        return self._plan

    def begin(self, plan: OutagePlan) -> dict[str, Any]:
        """Start ``plan`` now (replacing an unavailable outage in force); returns its record."""
        if self._refusal is not None:
            raise ValueError("a refused outage is in progress; it ends by itself")
        if plan.mode is OutageMode.REFUSED and self._runner is None:
            raise ValueError("a refused outage needs a listening socket; this emulator has none attached")
        started_at = time.time()
        self._plan, self._ends_at = plan, started_at + plan.seconds
        record = {**plan.to_json(), "started_at": started_at, "ends_at": self._ends_at}
        self.history.append(record)
        if plan.mode is OutageMode.REFUSED:
            self._refusal = asyncio.get_running_loop().create_task(self._refuse())
        return record

    def end(self) -> None:
        """End an unavailable outage early (a refused one cannot be reached, so it runs its course)."""
        if self._refusal is None:
            self._plan = None

    async def close(self) -> None:
        """Stop a refused outage's reopening, when the emulator itself stops."""
        if self._refusal is not None:
            self._refusal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refusal

    def response(self, request: web.Request) -> web.StreamResponse:
        """The answer to ``request`` during the outage in force."""
        assert self._plan is not None
        if self._plan.mode is OutageMode.REFUSED:
            # A request that slipped in on a connection opened just before the socket closed.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        headers = {} if self._plan.retry_after_seconds is None else {"Retry-After": str(self._plan.retry_after_seconds)}
        return failure(503, UNAVAILABLE_MESSAGE, headers)

    async def _refuse(self) -> None:
        assert self._runner is not None
        runner = self._runner
        try:
            await asyncio.sleep(REFUSE_AFTER_SECONDS)
            addresses = [address[:2] for address in runner.addresses]
            for site in list(runner.sites):
                await site.stop()
            if runner.server is not None:
                for connection in runner.server.connections:
                    connection.force_close()
            await asyncio.sleep(max(0.0, self._ends_at - time.time()))
            for host, port in addresses:
                await web.TCPSite(runner, host, port, backlog=self._backlog, reuse_address=True).start()
        finally:
            self._refusal = None
            self._plan = None
