"""WaveSpeedHook: WaveSpeed's API methods, on workers and in the triggerer.

The hook's transport (the connection and its key, the sync and async sessions, the retry policy) is
:class:`~airflow_provider_wavespeed.hooks.transport.BaseWaveSpeedHook`; the byte streaming of
uploads and downloads is :mod:`airflow_provider_wavespeed.media`. Twins share names:
``get_prediction`` / ``aget_prediction``.

A wait for a prediction (:meth:`WaveSpeedHook.wait_for_prediction`, and the trigger) does not give
up on transient failures at all until its own deadline: see :mod:`airflow_provider_wavespeed.polling`.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import time
from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit

import pendulum

from airflow_provider_wavespeed import CONNECTION_UI_FIELD_BEHAVIOUR
from airflow_provider_wavespeed.exceptions import (
    PredictionWaitTimeoutError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedServerError,
    WaveSpeedSubmissionUncertainError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.hooks.transport import (
    BaseWaveSpeedHook,
    is_retryable_error,
    response_chunks,
    retry_after_seconds,
    without_query,
)
from airflow_provider_wavespeed.media import (
    LargeBlockReader,
    MediaDestination,
    MediaSource,
    OpenedMedia,
    multipart_form,
    open_media,
    save_stream,
)
from airflow_provider_wavespeed.models import (
    CatalogModel,
    ModelPrice,
    Prediction,
    UploadTicket,
    balance_from_api,
    catalog_from_api,
    download_url_from_api,
    parse_envelope,
    predictions_from_api,
)
from airflow_provider_wavespeed.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    TransientFailures,
    check_poll_intervals,
    next_poll_delay,
)

log = logging.getLogger(__name__)

CATALOG_TTL_SECONDS = 3600.0
"""How long the model catalog is reused: the official MCP server's cache time. New models appear
rarely, and each task would otherwise fetch the whole catalog before every submit."""
# (monotonic time fetched, models) per base URL, shared by every hook of the process.
_catalog_cache: dict[str, tuple[float, list[CatalogModel]]] = {}


class WaveSpeedHook(BaseWaveSpeedHook):
    """Talk to WaveSpeedAI's REST API (v3).

    The API key is the connection's password; the base URL its host (default
    ``https://api.wavespeed.ai``; a host without a scheme means https, or http for loopback, so the
    local emulator works as ``127.0.0.1:8099``). Extras: ``connect_timeout``, ``read_timeout``,
    ``retry_limit``, ``retry_delay``. If the connection does not exist, the key comes from the
    ``WAVESPEED_API_KEY`` environment variable (the official SDK's convention) and the base URL from
    ``WAVESPEED_BASE_URL``. Nothing is looked up until the first request, so building a hook at DAG
    parse time costs nothing. The async twins run inside ``async with hook:`` (the trigger's way),
    which shares the event loop's one aiohttp session with every other trigger.

    :param wavespeed_conn_id: the Airflow connection to use.
    :param connect_timeout: overrides the connection's extra of the same name (seconds).
    :param read_timeout: overrides the connection's extra of the same name (seconds).
    :param retry_limit: overrides the connection's extra of the same name.
    :param retry_delay: overrides the connection's extra of the same name (seconds).
    """

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow UIs that do not read ``conn-fields`` from provider info."""
        return CONNECTION_UI_FIELD_BEHAVIOUR

    # -- predictions ------------------------------------------------------------------------------

    def check_submission(self, model: str, inputs: Mapping[str, Any], *, webhook: str | None = None) -> None:
        """Raise the ValueError :meth:`submit` would raise for these arguments, without sending anything.

        For a caller that records a submit before making it: a submit these checks refuse is never sent.
        """
        _check_model_path(model)
        _json_object(inputs, field="inputs")
        if webhook is not None and (urlsplit(webhook).scheme not in ("http", "https") or not urlsplit(webhook).netloc):
            raise ValueError(f"webhook={webhook!r} must be an https URL that WaveSpeed can POST to")

    def submit(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        webhook: str | None = None,
    ) -> Prediction:
        """Submit a prediction (a paid task) and return it, usually in status ``created``.

        :param model: the model path, e.g. ``sync/lipsync-1.9.0-beta``.
        :param inputs: the model's inputs, sent as the flat JSON body.
        :param webhook: an https URL WaveSpeed POSTs the result to when the task ends.
        :raises ValueError: the arguments fail :meth:`check_submission`; nothing was sent.
        :raises WaveSpeedSubmissionUncertainError: the request went out but its answer was lost;
            a prediction may exist and was deliberately not submitted again.
        """
        self.check_submission(model, inputs, webhook=webhook)
        body = dict(inputs)
        params = {"webhook": webhook} if webhook is not None else None
        submitted_at = pendulum.now("UTC")
        try:
            prediction = self._call(
                "POST", f"/api/v3/{model}", idempotent=False, json_body=body, params=params, parse=Prediction.from_api
            )
        except WaveSpeedNotFoundError as error:
            raise _unknown_model(model, error) from error
        except (WaveSpeedConnectionError, WaveSpeedServerError, WaveSpeedMalformedResponseError) as error:
            # Never processed: nothing was created, so nothing is uncertain.
            if isinstance(error, WaveSpeedUnavailableError) or (
                isinstance(error, WaveSpeedConnectionError) and not error.request_sent
            ):
                raise
            raise WaveSpeedSubmissionUncertainError(
                f"Submitting to WaveSpeed model '{model}' may have created a paid prediction: the request "
                f"was sent but its answer was lost ({error}). It was not sent again, because a second "
                f"submit would be charged again. Before retrying, look for a prediction of '{model}' "
                f"created after {submitted_at.isoformat()} in WaveSpeed's history "
                "(https://wavespeed.ai/center/default/history, or WaveSpeedHook.list_predictions) and "
                "wait for it with PredictionSensor(request_id=...).",
                model=model,
                submitted_at=submitted_at.isoformat(),
            ) from error
        log.info("Submitted WaveSpeed prediction %s (model %s)", prediction.id, model)
        return prediction

    def get_prediction(self, request_id: str, *, retry: bool = True) -> Prediction:
        """The prediction's current state (``GET /api/v3/predictions/{id}/result``).

        :param retry: retry transient failures (the connection's ``retry_limit``); a caller with
            its own backoff, such as :meth:`wait_for_prediction`, passes False.
        """
        path = _result_path(request_id)
        try:
            return self._call("GET", path, idempotent=True, retry=retry, parse=Prediction.from_api)
        except WaveSpeedNotFoundError as error:
            raise _unknown_prediction(request_id, error) from error

    def wait_for_prediction(
        self,
        request_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        next_step: str | None = None,
    ) -> Prediction:
        """Poll until the prediction ends, on the adaptive schedule of :mod:`..polling`; return it.

        Transient failures (WaveSpeed down, 429, 5xx, refused or timed-out connections, garbled
        answers) never end the wait before ``timeout``: it checks again with capped backoff.

        :param timeout: seconds to wait at most (None: no limit).
        :param poll_interval: the first interval between polls (WaveSpeed asks >= 5 s for video).
        :param max_poll_interval: the longest interval the schedule grows to, and the longest
            pause between checks during an outage.
        :param next_step: what the timeout error tells the user to do (default: PredictionSensor).
        :raises PredictionFailedError: it ended failed, cancelled, timed out or deleted.
        :raises PredictionWaitTimeoutError: ``timeout`` passed first; the prediction may still run.
        :raises WaveSpeedError: a non-transient answer, such as a rejected key or an unknown id.
        """
        check_poll_intervals(poll_interval, max_poll_interval)
        started = time.monotonic()
        last_status = ""
        failures = TransientFailures(request_id, poll_interval=poll_interval, max_poll_interval=max_poll_interval)
        while True:
            try:
                prediction = self.get_prediction(request_id, retry=False)
            except WaveSpeedError as error:
                if not is_retryable_error(error):
                    raise
                delay = failures.failed(error, log)
            else:
                failures.recovered(prediction.status, log)
                if prediction.status != last_status:
                    log.info(
                        "WaveSpeed prediction %s is %s (after %.0f s)",
                        request_id,
                        prediction.status,
                        time.monotonic() - started,
                    )
                    last_status = prediction.status
                prediction.raise_for_failure()
                if prediction.is_completed:
                    return prediction
                delay = next_poll_delay(
                    time.monotonic() - started, poll_interval=poll_interval, max_poll_interval=max_poll_interval
                )
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                raise PredictionWaitTimeoutError(
                    request_id=request_id,
                    waited_seconds=waited,
                    last_status=last_status or "unknown",
                    next_step=next_step,
                )
            # The last sleep is cut short so the final poll lands on the deadline, not after it.
            time.sleep(delay if timeout is None else min(delay, timeout - waited))

    def list_predictions(
        self,
        *,
        model: str | None = None,
        status: str | None = None,
        created_after: str | None = None,
        page: int = 1,
        page_size: int = 100,
    ) -> list[Prediction]:
        """Predictions of the last 7 days (``POST /api/v3/predictions``), newest first.

        It is how to find a prediction whose submit answer was lost
        (:class:`WaveSpeedSubmissionUncertainError` carries the model and the time to search from).
        """
        if not 1 <= page_size <= 100:
            raise ValueError(f"page_size={page_size!r} must be between 1 and 100")
        filters = {"model": model, "status": status, "created_after": created_after}
        body = {"page": page, "page_size": page_size, **{k: v for k, v in filters.items() if v}}
        return self._call("POST", "/api/v3/predictions", idempotent=True, json_body=body, parse=predictions_from_api)

    # -- media ------------------------------------------------------------------------------------

    def upload(self, source: MediaSource) -> str:
        """Upload a file to WaveSpeed, streamed, and return the URL to pass as a model input.

        :param source: a local path, a ``file://`` or object-storage URI (``s3://``, ``gs://``, ...),
            an ``ObjectStoragePath``, or a binary file object. A stream of known size uses the
            direct-upload flow of the official SDK (``POST /api/v3/media/uploads`` then ``PUT``);
            one that cannot tell its size (a pipe) is streamed as multipart to
            ``POST /api/v3/media/upload/binary``.
        """
        with open_media(source) as media:
            if media.size is None:
                return self._upload_multipart(media)
            return self._upload_direct(media)

    def _upload_direct(self, media: OpenedMedia) -> str:
        size = media.size
        assert size is not None
        settings = self._client_settings()
        ticket_body: dict[str, Any] = {"filename": media.filename, "size": size}
        content_type = mimetypes.guess_type(media.filename)[0]
        if content_type:
            ticket_body["content_type"] = content_type
        ticket = self._call(
            "POST", "/api/v3/media/uploads", idempotent=True, json_body=ticket_body, parse=UploadTicket.from_api
        )
        shown_url = without_query(ticket.put_url)
        start = media.stream.tell()

        def put_once() -> None:
            media.stream.seek(start)
            headers = {**ticket.put_headers, "Content-Length": str(size)}
            # The presigned URL authorises the PUT; the API key must not travel to storage hosts.
            if settings.is_api_origin(ticket.put_url):
                headers.update(settings.auth_headers())
            response = self._send(
                "PUT", ticket.put_url, shown_url=shown_url, data=LargeBlockReader(media.stream, size), headers=headers
            )
            if not 200 <= response.status_code < 300:
                parse_envelope(
                    http_status=response.status_code,
                    body=response.content,
                    url=shown_url,
                    retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                )

        self._with_retries(settings, put_once, idempotent=True)
        log.info("Uploaded %s (%d bytes) to WaveSpeed: %s", media.filename, size, ticket.download_url)
        return ticket.download_url

    def _upload_multipart(self, media: OpenedMedia) -> str:
        settings = self._client_settings()
        url = f"{settings.base_url}/api/v3/media/upload/binary"

        def send_once() -> str:
            content_type, body = multipart_form(media)
            response = self._send(
                "POST", url, data=body, headers={**settings.auth_headers(), "Content-Type": content_type}
            )
            data = parse_envelope(http_status=response.status_code, body=response.content, url=url)
            return download_url_from_api(data, url=url)

        # Not idempotent in practice: after the first byte is read the stream cannot be replayed.
        download_url = self._with_retries(settings, send_once, idempotent=False)
        log.info("Uploaded %s (streamed) to WaveSpeed: %s", media.filename, download_url)
        return download_url

    def is_served(self, url: str) -> bool:
        """Whether ``url`` (an earlier upload) still answers: one ``HEAD``, free, never retried.

        Anything but a 2xx, a connection error included, counts as "no": the caller then uploads
        again, which is always safe. That WaveSpeed's media host answers ``HEAD`` is inferred (it is
        a CDN; WaveSpeed documents only that uploads are kept for 7 days).
        """
        settings = self._client_settings()
        headers = settings.auth_headers() if settings.is_api_origin(url) else {}
        try:
            response = self._send("HEAD", url, shown_url=without_query(url), headers=headers, allow_redirects=True)
        except WaveSpeedConnectionError as error:
            log.info("Could not check %s (%s)", error.url, type(error.__cause__).__name__)
            return False
        return 200 <= response.status_code < 300

    def download(self, url: str, destination: MediaDestination, *, filename: str | None = None) -> str:
        """Stream ``url`` (an output) to ``destination`` and return where the file now is.

        The file appears only once complete and checked against ``Content-Length``; a failed
        transfer is retried from the start and never leaves a partial file.

        :param destination: a directory (existing, or given with a trailing ``/``) or a file path;
            local, ``file://`` or object storage.
        :param filename: the name inside a directory destination (default: the URL's last segment).
        """
        settings = self._client_settings()
        name = filename or os.path.basename(urlsplit(url).path) or "output"
        shown_url = without_query(url)
        headers = settings.auth_headers() if settings.is_api_origin(url) else {}

        def download_once() -> str:
            with self._send("GET", url, shown_url=shown_url, headers=headers, stream=True) as response:
                if response.status_code >= 400:
                    parse_envelope(
                        http_status=response.status_code,
                        body=response.raw.read(4096, decode_content=True) or b"",
                        url=shown_url,
                        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                    )
                expected = response.headers.get("Content-Length")
                # Requests undoes a Content-Encoding, so only an identity body's length is comparable.
                comparable = expected is not None and not response.headers.get("Content-Encoding")
                return save_stream(
                    response_chunks(response, shown_url),
                    destination,
                    name,
                    expected_size=int(expected or 0) if comparable else None,
                    source=shown_url,
                )

        location = self._with_retries(settings, download_once, idempotent=True)
        log.info("Downloaded %s to %s", shown_url, location)
        return location

    # -- account ----------------------------------------------------------------------------------

    def get_balance(self) -> float:
        """The account's balance in USD (``GET /api/v3/balance``)."""
        return self._call("GET", "/api/v3/balance", idempotent=True, parse=balance_from_api)

    # -- cost and catalog -------------------------------------------------------------------------

    def get_price(self, model: str, inputs: Mapping[str, Any]) -> ModelPrice:
        """What one prediction of ``model`` with ``inputs`` would cost (``POST /api/v3/model/price``).

        Free and without side effects, so retried like a read. Quote the inputs as they will be
        submitted (media as uploaded URLs): WaveSpeed prices media models by the media's length.
        """
        _check_model_path(model)
        body = {"model_id": model, "inputs": _json_object(inputs, field="inputs")}
        try:
            return self._call(
                "POST",
                "/api/v3/model/price",
                idempotent=True,
                json_body=body,
                parse=partial(ModelPrice.from_api, model=model),
            )
        except WaveSpeedNotFoundError as error:
            raise _unknown_model(model, error) from error

    def list_models(self, *, refresh: bool = False) -> list[CatalogModel]:
        """WaveSpeed's model catalog (``GET /api/v3/models``), reused for :data:`CATALOG_TTL_SECONDS`.

        :param refresh: fetch it again even if a recent copy is cached.
        """
        base_url = self.base_url
        cached = _catalog_cache.get(base_url)
        if cached is not None and not refresh and time.monotonic() - cached[0] < CATALOG_TTL_SECONDS:
            return cached[1]
        models = self._call("GET", "/api/v3/models", idempotent=True, parse=catalog_from_api)
        _catalog_cache[base_url] = (time.monotonic(), models)
        return models

    def get_catalog_model(self, model: str) -> CatalogModel | None:
        """The catalog's entry for ``model``, or None if the catalog (refreshed once) does not list it."""
        fetched_before = _catalog_cache.get(self.base_url, (None,))[0]
        found = _find_catalog_model(self.list_models(), model)
        if found is None and fetched_before is not None and _catalog_cache[self.base_url][0] == fetched_before:
            # The copy was cached: the model may be newer than it.
            found = _find_catalog_model(self.list_models(refresh=True), model)
        return found

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: one authenticated, free request (the balance)."""
        try:
            balance = self.get_balance()
        except (WaveSpeedError, ValueError) as error:
            return False, str(error)
        return True, f"Connected to WaveSpeed at {self.base_url}; balance ${balance:,.2f}"

    # -- async twins (the triggerer) --------------------------------------------------------------

    async def aget_prediction(self, request_id: str) -> Prediction:
        """The async twin of :meth:`get_prediction`."""
        path = _result_path(request_id)
        try:
            data = await self._acall("GET", path, idempotent=True)
        except WaveSpeedNotFoundError as error:
            raise _unknown_prediction(request_id, error) from error
        settings = await self._aclient_settings()
        return Prediction.from_api(data, url=f"{settings.base_url}{path}")


def _find_catalog_model(models: list[CatalogModel], model: str) -> CatalogModel | None:
    return next((entry for entry in models if entry.model == model), None)


def _check_model_path(model: Any) -> None:
    segments = model.split("/") if isinstance(model, str) else []
    if (
        len(segments) < 2
        or not all(segment and segment == segment.strip() for segment in segments)
        or any(segment in (".", "..") or "?" in segment or "#" in segment for segment in segments)
    ):
        raise ValueError(
            f"model={model!r} is not a WaveSpeed model path: use 'owner/model', e.g. "
            "'sync/lipsync-1.9.0-beta' (see the model's API page on wavespeed.ai)"
        )


def _json_object(inputs: Any, *, field: str) -> dict[str, Any]:
    if not isinstance(inputs, Mapping):
        raise ValueError(f"{field} must be a mapping of input names to values, got {type(inputs).__name__}")
    try:
        json.dumps(inputs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field} must be JSON-serialisable: {error}") from None
    return dict(inputs)


def _result_path(request_id: Any) -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValueError(f"request_id={request_id!r} must be a WaveSpeed prediction id (a non-empty string)")
    return f"/api/v3/predictions/{quote(request_id.strip(), safe='')}/result"


def _unknown_model(model: str, error: WaveSpeedNotFoundError) -> WaveSpeedNotFoundError:
    return WaveSpeedNotFoundError(
        f"WaveSpeed has no model '{model}' ({error.api_message or 'HTTP 404'}); nothing was submitted. "
        "Check the model path: 'owner/model' exactly as on the model's API page at wavespeed.ai/models.",
        http_status=error.http_status,
        api_code=error.api_code,
        api_message=error.api_message,
        url=error.url,
    )


def _unknown_prediction(request_id: str, error: WaveSpeedNotFoundError) -> WaveSpeedNotFoundError:
    return WaveSpeedNotFoundError(
        f"WaveSpeed has no prediction '{request_id}' for this API key: check the request id (predictions "
        "are deleted after 7 days) and that the connection's key is the one that submitted it.",
        http_status=error.http_status,
        api_code=error.api_code,
        api_message=error.api_message,
        url=error.url,
        request_id=request_id,
    )
