"""WaveSpeedHook: the connection, auth and HTTP of WaveSpeed's API, on workers and in the triggerer.

The sync side (``requests``, one ``Session`` per hook) serves operators and sensors on workers.
The async side (``aiohttp``) serves the trigger: every hook in a process shares ONE
``aiohttp.ClientSession`` per event loop, because the triggerer runs all triggers on one loop and a
shared session costs ~0.42 ms CPU per poll against ~1.5 ms for ``requests`` in a thread pool
(shared/research/async-http-measurement.md). Twins share names: ``get_prediction`` /
``aget_prediction``.

Retries are one predicate, :func:`is_retryable_error`, plus tenacity. Reads retry on connection
errors, timeouts, 429 and 5xx, with exponential backoff and jitter, honouring ``Retry-After``. The
submit POST is not idempotent (a duplicate is a duplicate charge), so it is retried only when the
request provably was not processed: the connection could not be opened, or WaveSpeed answered 429
or 503 (RFC 9110 section 15.6.4; WaveSpeed's code 5003). A wait for a prediction
(:meth:`WaveSpeedHook.wait_for_prediction`, and the trigger) does not give up on transient failures
at all until its own deadline: see :mod:`airflow_provider_wavespeed.polling`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import mimetypes
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import pendulum
import requests
import urllib3.exceptions
from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, mask_secret
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from airflow_provider_wavespeed import CONNECTION_UI_FIELD_BEHAVIOUR, __version__
from airflow_provider_wavespeed.exceptions import (
    PredictionWaitTimeoutError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedSubmissionUncertainError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.media import (
    MediaDestination,
    MediaSource,
    OpenedMedia,
    atomic_destination,
    open_media,
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

if TYPE_CHECKING:
    # Imported where the async side runs, not here: workers import this module for the sync side,
    # and aiohttp is 60% of its import time (~0.18 s of every task's start on a worker).
    import aiohttp

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wavespeed.ai"
API_KEY_ENV_VAR = "WAVESPEED_API_KEY"
"""The official SDK's variable, used when the connection does not exist."""
BASE_URL_ENV_VAR = "WAVESPEED_BASE_URL"

_DEFAULT_CONNECT_TIMEOUT = 10.0
_DEFAULT_READ_TIMEOUT = 60.0
_DEFAULT_RETRY_LIMIT = 5
_DEFAULT_RETRY_DELAY = 1.0
_MAX_BACKOFF_SECONDS = 60.0
# A Retry-After longer than this is clamped: a worker slot should not idle for minutes on one request.
_MAX_RETRY_AFTER_SECONDS = 120.0
_TRANSFER_CHUNK_BYTES = 1024 * 1024
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_KNOWN_EXTRAS = frozenset({"connect_timeout", "read_timeout", "retry_limit", "retry_delay"})

_T = TypeVar("_T")

CATALOG_TTL_SECONDS = 3600.0
"""How long the model catalog is reused: the official MCP server's cache time. New models appear
rarely, and each task would otherwise fetch the whole catalog before every submit."""
# (monotonic time fetched, models) per base URL, shared by every hook of the process.
_catalog_cache: dict[str, tuple[float, list[CatalogModel]]] = {}


@dataclass(frozen=True)
class _ClientSettings:
    """Everything a request needs, resolved once from the connection (or the environment)."""

    api_key: str = field(repr=False)
    base_url: str
    connect_timeout: float
    read_timeout: float
    retry_limit: int
    retry_delay: float
    key_source: str = ""
    """Where the key came from, for the error that says it was rejected."""
    base_url_source: str = ""
    """Where the base URL came from, for the log line that says which API is used."""

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": f"airflow-provider-wavespeed/{__version__}",
            "X-Client-Name": "airflow-provider-wavespeed",
            "X-Client-Version": __version__,
        }

    def is_api_origin(self, url: str) -> bool:
        """Whether ``url`` is on the API's own origin, the only place the key may be sent."""
        api, other = urlsplit(self.base_url), urlsplit(url)
        return (api.scheme, api.netloc) == (other.scheme, other.netloc)


def is_retryable_error(error: BaseException, *, idempotent: bool = True) -> bool:
    """Whether repeating the request that raised ``error`` is both useful and safe.

    :param idempotent: False for the submit POST. Then only a request that provably was not
        processed is repeated: a 429 or 503 (WaveSpeed refused it) or a connection that never
        opened. Anything else that fails after the request went out may have created a paid
        prediction.
    """
    if isinstance(error, (WaveSpeedRateLimitError, WaveSpeedUnavailableError)):
        return True
    if isinstance(error, WaveSpeedConnectionError):
        return idempotent or not error.request_sent
    if isinstance(error, WaveSpeedServerError):
        return idempotent
    # A 2xx whose body is garbled was damaged in transit; a read can simply be repeated.
    if isinstance(error, WaveSpeedMalformedResponseError):
        return idempotent
    return False


class _WaitRetryAfterOrBackoff:
    """Tenacity wait: the server's ``Retry-After`` when it gave one, else exponential backoff with jitter."""

    def __init__(self, initial_delay: float) -> None:
        self._backoff = wait_exponential(multiplier=initial_delay, max=_MAX_BACKOFF_SECONDS) + wait_random(
            0, initial_delay
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), _MAX_RETRY_AFTER_SECONDS)
        return float(self._backoff(retry_state))


def _log_retry(retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning("WaveSpeed request failed (%s); retry %d in %.1f s", error, retry_state.attempt_number, delay)


def _retry_options(settings: _ClientSettings, *, idempotent: bool) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(settings.retry_limit + 1),
        "wait": _WaitRetryAfterOrBackoff(settings.retry_delay),
        "retry": retry_if_exception(partial(is_retryable_error, idempotent=idempotent)),
        "before_sleep": _log_retry,
        "reraise": True,
    }


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _requests_error(error: requests.RequestException, url: str) -> WaveSpeedConnectionError:
    """Classify a ``requests`` failure; only a connection that never opened proves nothing was sent."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    never_sent = isinstance(error, requests.ConnectTimeout) or isinstance(reason, urllib3.exceptions.NewConnectionError)
    kind = "could not connect" if never_sent else "connection failed or timed out after sending"
    return WaveSpeedConnectionError(
        f"WaveSpeed request to {url} {kind}: {type(error).__name__}", request_sent=not never_sent, url=url
    )


def _aiohttp_error(error: Exception, url: str) -> WaveSpeedConnectionError:
    """Classify an ``aiohttp`` failure, as :func:`_requests_error` does."""
    import aiohttp

    never_sent = isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
    kind = "could not connect" if never_sent else "connection failed or timed out after sending"
    return WaveSpeedConnectionError(
        f"WaveSpeed request to {url} {kind}: {type(error).__name__}", request_sent=not never_sent, url=url
    )


@dataclass
class _LoopSession:
    session: aiohttp.ClientSession
    holders: int = 0


# One aiohttp session per event loop, shared by every hook (and so every trigger) on that loop.
_shared_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSession] = weakref.WeakKeyDictionary()


def _loop_session() -> _LoopSession:
    import aiohttp

    loop = asyncio.get_running_loop()
    entry = _shared_sessions.get(loop)
    if entry is None or entry.session.closed:
        entry = _LoopSession(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)))
        _shared_sessions[loop] = entry
    return entry


def shared_client_session() -> aiohttp.ClientSession:
    """The running loop's shared ``aiohttp.ClientSession``, created on first use.

    It carries no credentials (each request sends its own headers), so triggers of different
    connections can share its connection pool safely.
    """
    return _loop_session().session


@asynccontextmanager
async def holding_shared_client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """Keep the loop's shared session open for the block; the last holder to leave closes it.

    The triggerer's loop outlives its triggers, so there the session lives as long as any trigger
    runs; ``dag.test()`` runs each trigger in a short-lived loop, which must not be left with an
    open session behind it.
    """
    entry = _loop_session()
    entry.holders += 1
    try:
        yield entry.session
    finally:
        entry.holders -= 1
        if entry.holders == 0:
            if _shared_sessions.get(asyncio.get_running_loop()) is entry:
                del _shared_sessions[asyncio.get_running_loop()]
            await entry.session.close()


async def close_shared_client_session() -> None:
    """Close the running loop's shared session: for code that owns its loop (tests, benchmarks)."""
    entry = _shared_sessions.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry.session.close()


class WaveSpeedHook(BaseHook):
    """Talk to WaveSpeedAI's REST API (v3).

    The API key is the connection's password; the base URL its host (default
    ``https://api.wavespeed.ai``; a host without a scheme means https, or http for loopback, so the
    local emulator works as ``127.0.0.1:8099``). Extras: ``connect_timeout``, ``read_timeout``,
    ``retry_limit``, ``retry_delay``. If the connection does not exist, the key comes from the
    ``WAVESPEED_API_KEY`` environment variable (the official SDK's convention) and the base URL from
    ``WAVESPEED_BASE_URL``. Nothing is looked up until the first request, so building a hook at DAG
    parse time costs nothing.

    :param wavespeed_conn_id: the Airflow connection to use.
    :param connect_timeout: overrides the connection's extra of the same name (seconds).
    :param read_timeout: overrides the connection's extra of the same name (seconds).
    :param retry_limit: overrides the connection's extra of the same name.
    :param retry_delay: overrides the connection's extra of the same name (seconds).
    """

    conn_name_attr = "wavespeed_conn_id"
    default_conn_name = "wavespeed_default"
    conn_type = "wavespeed"
    hook_name = "WaveSpeed"

    def __init__(
        self,
        wavespeed_conn_id: str = default_conn_name,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        retry_limit: int | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__()
        self.wavespeed_conn_id = wavespeed_conn_id
        self._overrides: dict[str, float | int | None] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retry_limit": retry_limit,
            "retry_delay": retry_delay,
        }
        self._settings: _ClientSettings | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow UIs that do not read ``conn-fields`` from provider info."""
        return CONNECTION_UI_FIELD_BEHAVIOUR

    # -- connection -------------------------------------------------------------------------------

    def _client_settings(self) -> _ClientSettings:
        if self._settings is None:
            try:
                connection = self.get_connection(self.wavespeed_conn_id)
            except AirflowNotFoundException:
                connection = None
            self._settings = self._settings_from(connection)
        return self._settings

    async def _aclient_settings(self) -> _ClientSettings:
        """The async twin of :meth:`_client_settings`: never a sync lookup inside the event loop."""
        if self._settings is None:
            try:
                connection = await get_async_connection(self.wavespeed_conn_id, hook=self)
            except AirflowNotFoundException:
                connection = None
            self._settings = self._settings_from(connection)
        return self._settings

    def _settings_from(self, connection: Any | None) -> _ClientSettings:
        if connection is None:
            if self.wavespeed_conn_id != self.default_conn_name:
                # A mistyped connection id must not quietly fall back to another key (and API).
                raise WaveSpeedError(
                    f"There is no Airflow connection wavespeed_conn_id='{self.wavespeed_conn_id}'. Create a "
                    f"connection of type 'wavespeed' with that id and your API key as its password, or fix the "
                    f"id. (The {API_KEY_ENV_VAR} environment variable stands in only for the default "
                    f"connection '{self.default_conn_name}'.)"
                )
            api_key = os.environ.get(API_KEY_ENV_VAR, "")
            key_source = (
                f"the {API_KEY_ENV_VAR} environment variable (there is no connection '{self.wavespeed_conn_id}')"
            )
            if not api_key:
                raise WaveSpeedError(
                    f"No Airflow connection '{self.wavespeed_conn_id}' and no {API_KEY_ENV_VAR} "
                    f"environment variable: create a connection of type 'wavespeed' named "
                    f"'{self.wavespeed_conn_id}' with your API key as its password, or set {API_KEY_ENV_VAR}."
                )
            base_url_env = os.environ.get(BASE_URL_ENV_VAR)
            base_url = _normalise_base_url(base_url_env or DEFAULT_BASE_URL, None)
            base_url_source = f"the {BASE_URL_ENV_VAR} environment variable"
            if not base_url_env:
                base_url_source = f"the default (no {BASE_URL_ENV_VAR})"
            extras: Mapping[str, Any] = {}
        else:
            api_key = connection.password or ""
            key_source = f"the password (API Key) of the WaveSpeed connection '{self.wavespeed_conn_id}'"
            if not api_key:
                raise WaveSpeedError(
                    f"The WaveSpeed connection '{self.wavespeed_conn_id}' has no API key: set its "
                    "password (shown as 'API Key' in the connection form)."
                )
            base_url = _normalise_base_url(connection.host or DEFAULT_BASE_URL, connection.port)
            base_url_source = (
                f"the host of the WaveSpeed connection '{self.wavespeed_conn_id}'"
                if connection.host
                else f"the default (the WaveSpeed connection '{self.wavespeed_conn_id}' has no host)"
            )
            extras = connection.extra_dejson
        mask_secret(api_key)
        # Where the key and the API come from, never the key itself.
        log.info("WaveSpeed API key from %s; API %s from %s", key_source, base_url, base_url_source)
        unknown = sorted(set(extras) - _KNOWN_EXTRAS)
        if unknown:
            log.warning(
                "Ignoring unknown extras %s of WaveSpeed connection '%s' (known: %s)",
                unknown,
                self.wavespeed_conn_id,
                sorted(_KNOWN_EXTRAS),
            )

        def option(name: str, default: float, kind: type[float] | type[int], minimum: float) -> Any:
            value = self._overrides[name]
            if value is None:
                value = extras.get(name, default)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
            if (
                number is None
                or number < minimum
                or isinstance(value, bool)
                or (kind is int and not number.is_integer())
            ):
                raise ValueError(
                    f"{name}={value!r} for WaveSpeed connection '{self.wavespeed_conn_id}' must be "
                    f"{'an integer' if kind is int else 'a number'} >= {minimum}"
                )
            return kind(number)

        return _ClientSettings(
            api_key=api_key,
            base_url=base_url,
            connect_timeout=option("connect_timeout", _DEFAULT_CONNECT_TIMEOUT, float, 0.001),
            read_timeout=option("read_timeout", _DEFAULT_READ_TIMEOUT, float, 0.001),
            retry_limit=option("retry_limit", _DEFAULT_RETRY_LIMIT, int, 0),
            retry_delay=option("retry_delay", _DEFAULT_RETRY_DELAY, float, 0),
            key_source=key_source,
            base_url_source=base_url_source,
        )

    @property
    def base_url(self) -> str:
        """The API's base URL (resolving the connection on first use)."""
        return self._client_settings().base_url

    # -- sync HTTP --------------------------------------------------------------------------------

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (Airflow's hook convention)."""
        return self._session

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Any:
        """Send one API request (with retries unless ``retry`` is False) and return the envelope's ``data``."""
        settings = self._client_settings()
        url = f"{settings.base_url}{path}"

        def send_once() -> Any:
            try:
                response = self._session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    headers=settings.auth_headers(),
                    timeout=(settings.connect_timeout, settings.read_timeout),
                )
            except requests.RequestException as error:
                raise _requests_error(error, url) from error
            return parse_envelope(
                http_status=response.status_code,
                body=response.content,
                url=url,
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                key_source=settings.key_source,
            )

        if not retry:
            return send_once()
        return self._with_retries(settings, send_once, idempotent=idempotent)

    @staticmethod
    def _with_retries(settings: _ClientSettings, attempt: Callable[[], _T], *, idempotent: bool) -> _T:
        return Retrying(**_retry_options(settings, idempotent=idempotent))(attempt)

    # -- predictions ------------------------------------------------------------------------------

    def submit(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        webhook: str | None = None,
        before_send: Callable[[str], None] | None = None,
    ) -> Prediction:
        """Submit a prediction (a paid task) and return it, usually in status ``created``.

        :param model: the model path, e.g. ``sync/lipsync-1.9.0-beta``.
        :param inputs: the model's inputs, sent as the flat JSON body.
        :param webhook: an https URL WaveSpeed POSTs the result to when the task ends.
        :param before_send: called with the submit time (ISO 8601, UTC) once the arguments are
            checked and just before the request goes out: where a caller records that a paid
            prediction may come to exist (the operator's retry looks for it).
        :raises WaveSpeedSubmissionUncertainError: the request went out but its answer was lost;
            a prediction may exist and was deliberately not submitted again.
        """
        _check_model_path(model)
        body = _json_object(inputs, field="inputs")
        params = None
        if webhook is not None:
            if urlsplit(webhook).scheme not in ("http", "https") or not urlsplit(webhook).netloc:
                raise ValueError(f"webhook={webhook!r} must be an https URL that WaveSpeed can POST to")
            params = {"webhook": webhook}
        submitted_at = pendulum.now("UTC")
        if before_send is not None:
            before_send(submitted_at.isoformat())
        try:
            data = self._call("POST", f"/api/v3/{model}", idempotent=False, json_body=body, params=params)
            prediction = Prediction.from_api(data, url=f"{self.base_url}/api/v3/{model}")
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
            data = self._call("GET", path, idempotent=True, retry=retry)
        except WaveSpeedNotFoundError as error:
            raise _unknown_prediction(request_id, error) from error
        return Prediction.from_api(data, url=f"{self.base_url}{path}")

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
        data = self._call("POST", "/api/v3/predictions", idempotent=True, json_body=body)
        return predictions_from_api(data, url=f"{self.base_url}/api/v3/predictions")

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
        data = self._call("POST", "/api/v3/media/uploads", idempotent=True, json_body=ticket_body)
        ticket = UploadTicket.from_api(data, url=f"{settings.base_url}/api/v3/media/uploads")
        start = media.stream.tell()

        def put_once() -> None:
            media.stream.seek(start)
            headers = {**ticket.put_headers, "Content-Length": str(size)}
            # The presigned URL authorises the PUT; the API key must not travel to storage hosts.
            if settings.is_api_origin(ticket.put_url):
                headers.update(settings.auth_headers())
            try:
                response = self._session.put(
                    ticket.put_url,
                    data=_LargeBlockReader(media.stream, size),
                    headers=headers,
                    timeout=(settings.connect_timeout, settings.read_timeout),
                )
            except requests.RequestException as error:
                raise _requests_error(error, _without_query(ticket.put_url)) from error
            if not 200 <= response.status_code < 300:
                parse_envelope(
                    http_status=response.status_code,
                    body=response.content,
                    url=_without_query(ticket.put_url),
                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                )

        self._with_retries(settings, put_once, idempotent=True)
        log.info("Uploaded %s (%d bytes) to WaveSpeed: %s", media.filename, size, ticket.download_url)
        return ticket.download_url

    def _upload_multipart(self, media: OpenedMedia) -> str:
        """Stream a multipart body of unknown length (chunked): such a stream can be read only once."""
        settings = self._client_settings()
        url = f"{settings.base_url}/api/v3/media/upload/binary"
        boundary = uuid.uuid4().hex
        content_type = mimetypes.guess_type(media.filename)[0] or "application/octet-stream"
        filename = media.filename.replace('"', "")

        def body() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            while chunk := media.stream.read(_TRANSFER_CHUNK_BYTES):
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        def send_once() -> str:
            try:
                response = self._session.post(
                    url,
                    data=body(),
                    headers={
                        **settings.auth_headers(),
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                    timeout=(settings.connect_timeout, settings.read_timeout),
                )
            except requests.RequestException as error:
                raise _requests_error(error, url) from error
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
            response = self._session.head(
                url,
                headers=headers,
                allow_redirects=True,
                timeout=(settings.connect_timeout, settings.read_timeout),
            )
        except requests.RequestException as error:
            log.info("Could not check %s (%s)", _without_query(url), type(error).__name__)
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
        public_url = _without_query(url)
        headers = settings.auth_headers() if settings.is_api_origin(url) else {}

        def download_once() -> str:
            try:
                with self._session.get(
                    url,
                    headers=headers,
                    stream=True,
                    timeout=(settings.connect_timeout, settings.read_timeout),
                ) as response:
                    if response.status_code >= 400:
                        parse_envelope(
                            http_status=response.status_code,
                            body=response.raw.read(4096, decode_content=True) or b"",
                            url=public_url,
                            retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                        )
                    expected = response.headers.get("Content-Length")
                    # Requests undoes a Content-Encoding, so only an identity body's length is comparable.
                    check_length = expected is not None and not response.headers.get("Content-Encoding")
                    with atomic_destination(destination, name) as (target, location):
                        written = 0
                        for chunk in response.iter_content(chunk_size=_TRANSFER_CHUNK_BYTES):
                            target.write(chunk)
                            written += len(chunk)
                        if check_length and written != int(expected or 0):
                            raise WaveSpeedConnectionError(
                                f"Download of {public_url} was cut short: {written} of {expected} bytes",
                                request_sent=True,
                                url=public_url,
                            )
            except requests.RequestException as error:
                raise _requests_error(error, public_url) from error
            return location

        location = self._with_retries(settings, download_once, idempotent=True)
        log.info("Downloaded %s to %s", public_url, location)
        return location

    # -- account ----------------------------------------------------------------------------------

    def get_balance(self) -> float:
        """The account's balance in USD (``GET /api/v3/balance``)."""
        data = self._call("GET", "/api/v3/balance", idempotent=True)
        return balance_from_api(data, url=f"{self.base_url}/api/v3/balance")

    # -- cost and catalog -------------------------------------------------------------------------

    def get_price(self, model: str, inputs: Mapping[str, Any]) -> ModelPrice:
        """What one prediction of ``model`` with ``inputs`` would cost (``POST /api/v3/model/price``).

        Free and without side effects, so retried like a read. Quote the inputs as they will be
        submitted (media as uploaded URLs): WaveSpeed prices media models by the media's length.
        """
        _check_model_path(model)
        body = {"model_id": model, "inputs": _json_object(inputs, field="inputs")}
        try:
            data = self._call("POST", "/api/v3/model/price", idempotent=True, json_body=body)
        except WaveSpeedNotFoundError as error:
            raise _unknown_model(model, error) from error
        return ModelPrice.from_api(data, model=model, url=f"{self.base_url}/api/v3/model/price")

    def list_models(self, *, refresh: bool = False) -> list[CatalogModel]:
        """WaveSpeed's model catalog (``GET /api/v3/models``), reused for :data:`CATALOG_TTL_SECONDS`.

        :param refresh: fetch it again even if a recent copy is cached.
        """
        base_url = self.base_url
        cached = _catalog_cache.get(base_url)
        if cached is not None and not refresh and time.monotonic() - cached[0] < CATALOG_TTL_SECONDS:
            return cached[1]
        data = self._call("GET", "/api/v3/models", idempotent=True)
        models = catalog_from_api(data, url=f"{base_url}/api/v3/models")
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

    async def _acall(self, method: str, path: str, *, idempotent: bool) -> Any:
        """The async twin of :meth:`_call`, over the loop's shared session."""
        import aiohttp

        settings = await self._aclient_settings()
        url = f"{settings.base_url}{path}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
        )

        async def send_once() -> Any:
            try:
                async with shared_client_session().request(
                    method, url, headers=settings.auth_headers(), timeout=timeout
                ) as response:
                    body = await response.read()
            except (TimeoutError, aiohttp.ClientError) as error:
                raise _aiohttp_error(error, url) from error
            return parse_envelope(
                http_status=response.status,
                body=body,
                url=url,
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                key_source=settings.key_source,
            )

        if settings.retry_limit == 0:
            # The trigger's case: it owns retrying. A tenacity wrapper around a single attempt still
            # costs ~30 us and leaves ~26 objects of cyclic garbage per call, which, at thousands of
            # polls in one triggerer, sets off full collections that pause every trigger's loop.
            return await send_once()
        return await AsyncRetrying(**_retry_options(settings, idempotent=idempotent))(send_once)

    async def aget_prediction(self, request_id: str) -> Prediction:
        """The async twin of :meth:`get_prediction`."""
        path = _result_path(request_id)
        try:
            data = await self._acall("GET", path, idempotent=True)
        except WaveSpeedNotFoundError as error:
            raise _unknown_prediction(request_id, error) from error
        settings = await self._aclient_settings()
        return Prediction.from_api(data, url=f"{settings.base_url}{path}")


class _LargeBlockReader:
    """A file wrapper that hands ``http.client`` 1 MiB per read instead of its 8 KiB default.

    Fewer, larger writes move a large upload at loopback speed; ``__len__`` keeps requests from
    switching to chunked encoding, which presigned PUTs reject.
    """

    def __init__(self, stream: Any, size: int) -> None:
        self._stream = stream
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(max(size, _TRANSFER_CHUNK_BYTES) if size >= 0 else -1)


def _find_catalog_model(models: list[CatalogModel], model: str) -> CatalogModel | None:
    return next((entry for entry in models if entry.model == model), None)


def _normalise_base_url(host: str, port: int | None) -> str:
    host = host.strip().rstrip("/")
    if "://" not in host:
        hostname = urlsplit(f"//{host}").hostname or ""
        host = f"{'http' if hostname in _LOOPBACK_HOSTS or hostname.startswith('127.') else 'https'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"Base URL {host!r} of the WaveSpeed connection must be an http(s) URL")
    if port and parts.port is None:
        host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return host


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


def _without_query(url: str) -> str:
    """A URL fit for logs: presigned query strings carry credentials of their own."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
