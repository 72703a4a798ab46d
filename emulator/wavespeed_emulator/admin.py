"""Test and admin endpoints under ``/_emulator/``: not part of the WaveSpeed API.

- ``GET /_emulator/stats``: the counters of `EmulatorStats` plus every prediction's timeline;
- ``POST /_emulator/faults``: replace the fault settings with a JSON object of `FaultConfig` fields;
- ``POST /_emulator/reset``: forget predictions, outputs, stats and faults;
- ``POST /_emulator/outage``: a full outage for a while, ``{"mode": "unavailable" | "refused",
  "seconds": N, "retry_after_seconds": M}`` (see `wavespeed_emulator.outage`);
  ``DELETE /_emulator/outage`` ends an ``unavailable`` one early.
- ``POST /_emulator/uploads/expire``: delete every uploaded file, as WaveSpeed does after 7 days.

They need no API key, so they answer only clients on this machine (loopback peers) even when the
emulator listens on another interface; anyone else gets 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from wavespeed_emulator.faults import FaultConfig
from wavespeed_emulator.loopback import is_loopback_host
from wavespeed_emulator.outage import Outage, OutagePlan
from wavespeed_emulator.payloads import read_json_object

if TYPE_CHECKING:
    from wavespeed_emulator.service import WaveSpeedService

ADMIN_PREFIX = "/_emulator/"


def add_admin_routes(app: web.Application, service: WaveSpeedService, outage: Outage) -> None:
    async def stats(request: web.Request) -> web.Response:
        _require_loopback_peer(request)
        return web.json_response({**service.stats_snapshot(), "outages": outage.history})

    async def faults(request: web.Request) -> web.Response:
        _require_loopback_peer(request)
        try:
            config = FaultConfig.from_json(await read_json_object(request))
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        service.faults.configure(config)
        return web.json_response({"faults": config.to_json()})

    async def reset(request: web.Request) -> web.Response:
        _require_loopback_peer(request)
        service.reset()
        return web.json_response({"reset": True})

    async def begin_outage(request: web.Request) -> web.Response:
        _require_loopback_peer(request)
        try:
            record = outage.begin(OutagePlan.from_json(await read_json_object(request)))
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"outage": record})

    async def end_outage(request: web.Request) -> web.Response:
        _require_loopback_peer(request)
        outage.end()
        return web.json_response({"outage": None})

    async def expire_uploads(request: web.Request) -> web.Response:
        _require_loopback_peer(request)
        return web.json_response({"expired": service.media.expire_uploads()})

    app.router.add_get(f"{ADMIN_PREFIX}stats", stats)
    app.router.add_post(f"{ADMIN_PREFIX}outage", begin_outage)
    app.router.add_delete(f"{ADMIN_PREFIX}outage", end_outage)
    app.router.add_post(f"{ADMIN_PREFIX}uploads/expire", expire_uploads)
    app.router.add_post(f"{ADMIN_PREFIX}faults", faults)
    app.router.add_post(f"{ADMIN_PREFIX}reset", reset)


def _require_loopback_peer(request: web.Request) -> None:
    if not is_loopback_host(request.remote):
        raise web.HTTPForbidden(text="The emulator's admin endpoints answer only loopback clients")
