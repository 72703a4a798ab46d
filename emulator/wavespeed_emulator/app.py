"""The HTTP face of the emulator: WaveSpeed's ``/api/v3/`` routes, the storage PUT and media files.

Middlewares, outermost first: `observe` counts every request under its route name,
`outage` answers for a service that is down (`wavespeed_emulator.outage`),
`authenticate` checks the Bearer key on ``/api/v3/``, `inject_faults` lets the fault injector
interfere, and `api_errors` turns `ApiError` and aiohttp's own 404/405 into the error envelope.
"""

from __future__ import annotations

import mimetypes
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, hdrs, web

from wavespeed_emulator.admin import ADMIN_PREFIX, add_admin_routes
from wavespeed_emulator.catalog import find_model
from wavespeed_emulator.envelope import ApiError, failure, success
from wavespeed_emulator.faults import DROPPED_CONNECTION, Handler
from wavespeed_emulator.media import (
    CHUNK_BYTES,
    MEDIA_PREFIX,
    STORAGE_PUT_PREFIX,
    InvalidTicketError,
    UploadSizeMismatchError,
    media_type,
    safe_filename,
)
from wavespeed_emulator.outage import Outage
from wavespeed_emulator.payloads import optional_field, read_json_object, required_field
from wavespeed_emulator.predictions import PredictionStatus
from wavespeed_emulator.pricing import catalog
from wavespeed_emulator.routes import API_ROUTES, UNMATCHED, Route
from wavespeed_emulator.service import WaveSpeedService
from wavespeed_emulator.stats import DROPPED

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

API_PREFIX = "/api/v3/"
UNAUTHORIZED_MESSAGE = "Unauthorized: invalid or missing API key"
WEBHOOK_BASE64_ERROR = "webhook callback does not support base64 output, please use the normal API to use base64 output"
MAX_PAGE_SIZE = 100
_FINAL_STATUSES = frozenset({PredictionStatus.COMPLETED, PredictionStatus.FAILED})

SERVICE = web.AppKey("service", WaveSpeedService)
OUTAGE = web.AppKey("outage", Outage)
ROUTE_NAMES = web.AppKey("route_names", dict[web.AbstractRoute, str])
ROUTE_NAME = web.RequestKey("route_name", str)


def build_app(service: WaveSpeedService) -> web.Application:
    app = web.Application(middlewares=[observe, outage, authenticate, inject_faults, api_errors])
    app[SERVICE] = service
    app[OUTAGE] = Outage()
    api = WaveSpeedApi(service)
    route_names: dict[web.AbstractRoute, str] = {}
    for method, path, handler, name in api.routes():
        route_names[app.router.add_route(method, path, handler)] = name.value
    for route in app.router.add_static(MEDIA_PREFIX, service.media.media_root):
        route_names[route] = Route.MEDIA.value
    app[ROUTE_NAMES] = route_names
    add_admin_routes(app, service, app[OUTAGE])

    async def close_service(_: web.Application) -> None:
        await app[OUTAGE].close()
        await service.close()

    app.on_cleanup.append(close_service)
    return app


def base_url(request: web.Request) -> str:
    """The URL prefix of generated links: the configured public URL, else what the client called."""
    public = request.app[SERVICE].config.public_base_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


class WaveSpeedApi:
    """Request handlers: each parses HTTP, calls the service and wraps the answer in the envelope."""

    def __init__(self, service: WaveSpeedService) -> None:
        self._service = service

    def routes(self) -> list[tuple[str, str, Handler, Route]]:
        """(method, path, handler, name); the catch-all submit path comes last so it shadows nothing."""
        predictions = f"{API_PREFIX}predictions"
        return [
            (hdrs.METH_POST, predictions, self.list_predictions, Route.LIST_PREDICTIONS),
            (hdrs.METH_POST, f"{predictions}/delete", self.delete_predictions, Route.DELETE_PREDICTIONS),
            (hdrs.METH_GET, f"{predictions}/{{prediction_id}}/result", self.get_prediction, Route.RESULT),
            (hdrs.METH_GET, f"{predictions}/{{prediction_id}}", self.get_prediction, Route.GET_PREDICTION),
            (
                hdrs.METH_DELETE,
                f"{predictions}/{{prediction_id}}",
                self.delete_prediction,
                Route.DELETE_PREDICTION,
            ),
            (hdrs.METH_GET, f"{API_PREFIX}balance", self.balance, Route.BALANCE),
            (hdrs.METH_GET, f"{API_PREFIX}models", self.models, Route.MODELS),
            (hdrs.METH_POST, f"{API_PREFIX}model/price", self.price, Route.PRICE),
            (hdrs.METH_GET, f"{API_PREFIX}webhook/secret", self.webhook_secret, Route.WEBHOOK_SECRET),
            (hdrs.METH_POST, f"{API_PREFIX}media/upload/binary", self.upload, Route.UPLOAD),
            (hdrs.METH_POST, f"{API_PREFIX}media/uploads", self.upload_ticket, Route.UPLOAD_TICKET),
            (hdrs.METH_PUT, f"{STORAGE_PUT_PREFIX}{{key}}", self.storage_put, Route.STORAGE_PUT),
            (hdrs.METH_POST, f"{API_PREFIX}{{model_path:.+}}", self.submit, Route.SUBMIT),
        ]

    async def submit(self, request: web.Request) -> web.Response:
        model = find_model(request.match_info["model_path"])
        body = await read_json_object(request)
        webhook_url = _webhook_url(request.query.get("webhook"))
        sync_mode = optional_field(body, "enable_sync_mode", bool) or False
        base64_output = optional_field(body, "enable_base64_output", bool) or False
        if webhook_url is not None and base64_output:
            # The one error the API documents outside the envelope.
            return web.json_response({"error": WEBHOOK_BASE64_ERROR}, status=400)
        inputs = model.validate(body)
        url = base_url(request)
        price = await self._service.quote(model, inputs, url)
        prediction = self._service.submit(
            model, inputs, price=price, base_url=url, webhook_url=webhook_url, base64_output=base64_output
        )
        if sync_mode:
            return success(await self._service.describe_in_sync_mode(prediction, url))
        return success(await self._service.describe(prediction, url, now=prediction.created_at))

    async def get_prediction(self, request: web.Request) -> web.Response:
        prediction = self._service.predictions.get(request.match_info["prediction_id"])
        described = await self._service.describe(prediction, base_url(request))
        if prediction.first_final_read_at is None and described["status"] in _FINAL_STATUSES:
            prediction.first_final_read_at = time.time()
        return success(described)

    async def list_predictions(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        page = _int_in_range(body, "page", default=1, minimum=1)
        page_size = _int_in_range(body, "page_size", default=MAX_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        now = time.time()
        matches = self._service.predictions.query(
            now=now,
            model=optional_field(body, "model", str),
            status=_status_filter(optional_field(body, "status", str)),
            created_after_ms=_time_filter_ms(body, "created_after"),
            created_before_ms=_time_filter_ms(body, "created_before"),
        )
        url = base_url(request)
        items = []
        for prediction in matches[(page - 1) * page_size : page * page_size]:
            item = await self._service.describe(prediction, url, now=now)
            items.append({**item, "executionTime": prediction.inference_ms(now)})
        return success({"page": page, "items": items})

    async def delete_predictions(self, request: web.Request) -> web.Response:
        prediction_ids = required_field(await read_json_object(request), "ids", list)
        if not all(isinstance(prediction_id, str) for prediction_id in prediction_ids):
            raise ApiError(400, "Invalid parameter: ids must be a list of prediction id strings")
        return success({"deleted_count": self._service.delete_predictions(prediction_ids)})

    async def delete_prediction(self, request: web.Request) -> web.Response:
        prediction = self._service.predictions.get(request.match_info["prediction_id"])
        self._service.mark_deleted(prediction)
        return success(await self._service.describe(prediction, base_url(request)))

    async def price(self, request: web.Request) -> web.Response:
        """``POST /api/v3/model/price``: what a submit of these inputs would be charged."""
        body = await read_json_object(request)
        model = find_model(required_field(body, "model_id", str))
        inputs = model.validate(required_field(body, "inputs", dict))
        return success((await self._service.quote(model, inputs, base_url(request))).describe())

    async def models(self, request: web.Request) -> web.Response:
        """``GET /api/v3/models``: the catalog, each model with its price basis and input schema."""
        return success(catalog(self._service.config))

    async def balance(self, request: web.Request) -> web.Response:
        return success({"balance": self._service.balance})

    async def webhook_secret(self, request: web.Request) -> web.Response:
        return success({"secret": self._service.webhooks.secret})

    async def upload(self, request: web.Request) -> web.Response:
        """The one-step upload: a multipart body whose ``file`` part is streamed to disk."""
        if not request.content_type.startswith("multipart/"):
            raise ApiError(400, "Expected a multipart/form-data body with a 'file' field")
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "file":
                filename = safe_filename(part.filename or "upload")
                kind = _media_type_or_error(filename, part.headers.get(hdrs.CONTENT_TYPE))
                stored = await self._service.media.store_upload(filename, kind, _part_chunks(part))
                return success(stored.describe(base_url(request)))
        raise ApiError(400, "Missing multipart field: file")

    async def upload_ticket(self, request: web.Request) -> web.Response:
        """Step one of the direct upload: declare the file, get a presigned-style PUT URL."""
        body = await read_json_object(request)
        filename = safe_filename(required_field(body, "filename", str))
        size = required_field(body, "size", int)
        if size < 0:
            raise ApiError(400, f"Invalid parameter: size must not be negative, got {size}")
        content_type = (
            optional_field(body, "content_type", str) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        kind = _media_type_or_error(filename, content_type)
        ticket = self._service.media.create_ticket(filename, size, content_type, kind)
        url = base_url(request)
        return success(
            {
                **ticket.stored_file().describe(url),
                "upload": {
                    "method": hdrs.METH_PUT,
                    "url": url + self._service.media.put_url_path(ticket.key),
                    "headers": {hdrs.CONTENT_TYPE: content_type},
                },
            }
        )

    async def storage_put(self, request: web.Request) -> web.Response:
        """Step two: the raw bytes, authorised by the URL's signature alone (no Bearer key), like S3."""
        try:
            await self._service.media.fulfil_ticket(
                request.match_info["key"],
                request.query.get("signature", ""),
                request.content_length,
                request.content.iter_chunked(CHUNK_BYTES),
            )
        except InvalidTicketError:
            return web.Response(status=403, text="Forbidden: unknown, already used or wrongly signed upload URL")
        except UploadSizeMismatchError as error:
            return web.Response(status=400, text=f"Bad request: {error}")
        return web.Response(status=200)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request and its answer in the stats; admin requests are not counted."""
    route = request.app[ROUTE_NAMES].get(request.match_info.route)
    if route is None and request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    request[ROUTE_NAME] = route_name = route or UNMATCHED
    stats = request.app[SERVICE].stats
    try:
        response = await handler(request)
    except web.HTTPException as error:
        stats.record_response(route_name, str(error.status))
        raise
    stats.record_response(route_name, DROPPED if response.get(DROPPED_CONNECTION) else str(response.status))
    return response


@web.middleware
async def outage(request: web.Request, handler: Handler) -> web.StreamResponse:
    """During an outage every request but the admin endpoints fails, before anything is processed."""
    if request.path.startswith(ADMIN_PREFIX) or request.app[OUTAGE].current() is None:
        return await handler(request)
    return request.app[OUTAGE].response(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(API_PREFIX) and not request.app[SERVICE].is_authorized(
        request.headers.get(hdrs.AUTHORIZATION)
    ):
        return failure(401, UNAUTHORIZED_MESSAGE)
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.get(ROUTE_NAME)
    if route not in API_ROUTES:
        return await handler(request)
    return await request.app[SERVICE].faults.handle(request, Route(route), handler)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer `ApiError` anywhere, and aiohttp's own errors under ``/api/v3/``, in the error envelope."""
    try:
        return await handler(request)
    except ApiError as error:
        return failure(error.status, error.message)
    except web.HTTPException as error:
        if error.status < 400 or not request.path.startswith(API_PREFIX):
            raise
        return failure(error.status, f"{error.reason}: {request.method} {request.path}")


def _webhook_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ApiError(400, f"Invalid webhook URL: {raw!r} is not an http(s) URL")
    return raw


def _int_in_range(body: dict[str, Any], name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    given = optional_field(body, name, int)
    value = default if given is None else given
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, f"Invalid parameter: {name} must be {bounds}, got {value}")
    return value


def _status_filter(raw: str | None) -> PredictionStatus | None:
    if raw is None:
        return None
    try:
        return PredictionStatus(raw)
    except ValueError:
        allowed = ", ".join(status.value for status in PredictionStatus)
        raise ApiError(400, f"Invalid parameter: status {raw!r} is not one of {allowed}") from None


def _time_filter_ms(body: dict[str, Any], name: str) -> int | None:
    """An ISO 8601 filter as Unix milliseconds; a time without offset is taken as UTC."""
    raw = optional_field(body, name, str)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"Invalid parameter: {name} {raw!r} is not an ISO 8601 time") from None
    return round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _media_type_or_error(filename: str, content_type: str | None) -> str:
    kind = media_type(filename, content_type)
    if kind is None:
        raise ApiError(400, f"Unsupported file type: {filename}; upload an image, video or audio file")
    return kind


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk
