"""Fault injection: the misbehaviour of a real network and gateway, on demand and reproducibly.

Each API request draws at most one fault, each kind with its own rate in `FaultConfig` (so the
rates add up to at most 1), from an RNG seeded by the emulator's seed: one seed and one request
order give the same faults every run. Faults can be limited to some routes (`Route` names).

429 and 503 answers always come before the request is handled: a rate limit rejects work, and a
503 says the request was not processed (RFC 9110 section 15.6.4; WaveSpeed's 5003), so neither
ever creates a prediction. Every other fault strikes after the handler ran with probability
``after_accept_rate``: the request took effect (for a submit, the prediction exists and will be
charged) but the client sees a 500, 502 or 504, a dropped connection, a late or a malformed answer.
That is the case a client must not meet by blindly re-submitting. On the routes named in
``before_accept_routes`` every fault strikes before the handler runs (a gateway that failed before
reaching the service); the client cannot tell the difference, it only changes what exists after.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wavespeed_emulator.envelope import failure
from wavespeed_emulator.routes import API_ROUTES, Route

if TYPE_CHECKING:
    from wavespeed_emulator.stats import EmulatorStats

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DROPPED_CONNECTION = web.ResponseKey("dropped_connection", bool)
"""Marks the response of a dropped connection: it is never sent, and stats count it as dropped."""

BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
GATEWAY_TIMEOUT_PAGE = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    "<body><h1>We'll be back soon</h1><p>The service is under maintenance.</p></body></html>"
)


RATE_LIMIT_MESSAGE = "Too many requests: rate limit exceeded for your account level"


class FaultKind(StrEnum):
    RATE_LIMITED = "429"
    RATE_LIMITED_RETRY_AFTER = "429_retry_after"
    INTERNAL_ERROR = "500"
    BAD_GATEWAY = "502"
    UNAVAILABLE = "503"
    GATEWAY_TIMEOUT = "504"
    DROP = "drop"
    SLOW = "slow"
    MALFORMED = "malformed"


# Answers that say the request was not processed: they never strike after it took effect.
_NOT_PROCESSED = (FaultKind.RATE_LIMITED, FaultKind.RATE_LIMITED_RETRY_AFTER, FaultKind.UNAVAILABLE)


class MalformedKind(StrEnum):
    """The ways a malformed answer can be wrong; all of them come with HTTP 200."""

    HTML = "html"
    TRUNCATED_JSON = "truncated_json"
    ERROR_CODE = "error_code"
    MISSING_ID = "missing_id"


@dataclass(frozen=True)
class FaultConfig:
    """Per-request fault probabilities and their parameters; the default injects nothing.

    ``routes`` limits faults to those `Route` names (empty: every API route);
    ``malformed_kinds`` are drawn from uniformly when a malformed answer is due;
    ``after_accept_rate`` is the chance that a fault other than 429 and 503 strikes after the
    request took effect;
    ``before_accept_routes`` are routes where it is 0 (every fault strikes before the handler runs).
    """

    rate_429: float = 0.0
    rate_429_retry_after: float = 0.0
    retry_after_seconds: int = 1
    rate_500: float = 0.0
    rate_502: float = 0.0
    rate_503: float = 0.0
    rate_504: float = 0.0
    rate_drop: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_malformed: float = 0.0
    malformed_kinds: tuple[str, ...] = tuple(MalformedKind)
    routes: tuple[str, ...] = ()
    after_accept_rate: float = 0.5
    before_accept_routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        probabilities = {name: getattr(self, name) for name in ("after_accept_rate", *self._rate_fields())}
        for name, probability in probabilities.items():
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {probability}")
        total = sum(rate for _, rate in self.rates())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; at most one fault per request, so at most 1")
        if self.retry_after_seconds < 0 or self.slow_seconds < 0:
            raise ValueError("retry_after_seconds and slow_seconds must not be negative")
        unknown_kinds = set(self.malformed_kinds) - set(MalformedKind)
        if unknown_kinds or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds must be a non-empty subset of {', '.join(MalformedKind)}")
        unknown_routes = (set(self.routes) | set(self.before_accept_routes)) - API_ROUTES
        if unknown_routes:
            raise ValueError(
                f"unknown routes {sorted(unknown_routes)}; fault routes are {', '.join(sorted(API_ROUTES))}"
            )

    def rates(self) -> tuple[tuple[FaultKind, float], ...]:
        """Each fault kind with its rate; a ``rate_<kind>`` field holds the rate of `FaultKind` ``<kind>``."""
        return tuple((FaultKind(name.removeprefix("rate_")), getattr(self, name)) for name in self._rate_fields())

    @classmethod
    def _rate_fields(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls) if field.name.startswith("rate_"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON object of field names; absent fields keep their defaults.

        Raises ValueError naming an unknown field or a value of the wrong type.
        """
        defaults = asdict(cls())
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in defaults:
                raise ValueError(f"unknown fault setting {name!r}")
            values[name] = _coerce(name, value, defaults[name])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the field's default (JSON has no tuples, ints pass as floats)."""
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{name} must be a list of strings")
        return tuple(value)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, float) and numeric:
        return float(value)
    if isinstance(default, int) and numeric and float(value).is_integer():
        return int(value)
    raise ValueError(f"{name} must be a {type(default).__name__}, got {value!r}")


class FaultInjector:
    """Wraps API handlers and replaces or delays their answers as the `FaultConfig` draws."""

    def __init__(self, stats: EmulatorStats, seed: int) -> None:
        self._stats = stats
        self._seed = seed
        self.configure(FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Switch to ``config``, restarting the seeded draws so a test's faults are reproducible."""
        self._config = config
        self._rates = tuple((kind, rate) for kind, rate in config.rates() if rate > 0)
        self._rng = random.Random(self._seed)

    async def handle(self, request: web.Request, route: Route, handler: Handler) -> web.StreamResponse:
        kind = self._draw(route)
        if kind is None:
            return await handler(request)
        malformed = (
            MalformedKind(self._rng.choice(self._config.malformed_kinds)) if kind is FaultKind.MALFORMED else None
        )
        after_accept = (
            kind not in _NOT_PROCESSED
            and self._rng.random() < self._config.after_accept_rate
            and route not in self._config.before_accept_routes
        )
        self._stats.record_fault(
            f"{kind}_{malformed}" if malformed else kind.value,
            route=route.value,
            after_accept=after_accept,
            prediction_id=request.match_info.get("prediction_id"),
        )
        accepted = await handler(request) if after_accept else None
        if kind is FaultKind.SLOW:
            await asyncio.sleep(self._config.slow_seconds)
            return accepted if accepted is not None else await handler(request)
        if malformed is not None:
            return _malformed(malformed, _json_body(accepted))
        return self._error_response(kind, request)

    def _draw(self, route: Route) -> FaultKind | None:
        if not self._rates or (self._config.routes and route not in self._config.routes):
            return None
        draw = self._rng.random()
        for kind, rate in self._rates:
            if draw < rate:
                return kind
            draw -= rate
        return None

    def _error_response(self, kind: FaultKind, request: web.Request) -> web.Response:
        match kind:
            case FaultKind.RATE_LIMITED:
                return failure(429, RATE_LIMIT_MESSAGE)
            case FaultKind.RATE_LIMITED_RETRY_AFTER:
                return failure(429, RATE_LIMIT_MESSAGE, {"Retry-After": str(self._config.retry_after_seconds)})
            case FaultKind.DROP:
                return _drop_connection(request)
            case FaultKind.BAD_GATEWAY:
                return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
            case FaultKind.UNAVAILABLE:
                return failure(503, "Service temporarily unavailable, please retry later")
            case FaultKind.GATEWAY_TIMEOUT:
                return web.Response(status=504, text=GATEWAY_TIMEOUT_PAGE, content_type="text/html")
            case _:
                return failure(500, "Internal server error")


def _drop_connection(request: web.Request) -> web.Response:
    """Close the TCP connection; aiohttp discards the placeholder response written to it."""
    if request.transport is not None:
        request.transport.close()
    response = web.Response(status=500)
    response[DROPPED_CONNECTION] = True
    return response


def _json_body(response: web.StreamResponse | None) -> Any:
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def _malformed(kind: MalformedKind, accepted: Any) -> web.Response:
    """A 200 answer that a careful client must not take for success.

    Built from the real answer when the request was handled, so a truncated submit answer may still
    hold part of the prediction id, as a cut-off connection would deliver.
    """
    envelope = accepted if isinstance(accepted, dict) else {"code": 200, "message": "success", "data": {}}
    if kind is MalformedKind.HTML:
        return web.Response(text=MAINTENANCE_PAGE, content_type="text/html")
    if kind is MalformedKind.TRUNCATED_JSON:
        text = json.dumps(envelope)
        return web.Response(text=text[: len(text) // 2], content_type="application/json")
    if kind is MalformedKind.ERROR_CODE:
        return web.json_response({"code": 500, "message": "Internal server error", "data": None})
    data = envelope.get("data")
    stripped = {key: value for key, value in data.items() if key != "id"} if isinstance(data, dict) else {}
    return web.json_response({**envelope, "data": stripped})
