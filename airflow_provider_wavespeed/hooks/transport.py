"""The transport under :class:`~airflow_provider_wavespeed.hooks.wavespeed.WaveSpeedHook`.

Where a request goes and with which key (the connection, or the SDK's environment variables), how
it is sent (``requests`` on workers, ``aiohttp`` in the triggerer), how a failure is classified, and
when it is repeated. The API methods build on :class:`BaseWaveSpeedHook` and never see a
``requests`` or ``aiohttp`` exception.

Retries are one predicate, :func:`is_retryable_error`, plus tenacity. Reads retry on connection
errors, timeouts, 429 and 5xx, with exponential backoff and jitter, honouring ``Retry-After``. The
submit POST is not idempotent (a duplicate is a duplicate charge), so it is retried only when the
request provably was not processed: the connection could not be opened, or WaveSpeed answered 429
or 503 (RFC 9110 section 15.6.4; WaveSpeed's code 5003).

The async side serves the trigger. Every hook entered with ``async with`` on an event loop shares
that loop's ONE ``aiohttp.ClientSession``: the triggerer runs every trigger of the deployment on one
loop, and one connection pool for all of them costs far less CPU per poll than a session each or
``requests`` in a thread pool (``make bench``, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

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

from airflow_provider_wavespeed import __version__
from airflow_provider_wavespeed.exceptions import (
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.media import TRANSFER_CHUNK_BYTES
from airflow_provider_wavespeed.models import parse_envelope

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from types import TracebackType

    # Imported where the async side runs, not here: workers import the hook for the sync side
    # only, and aiohttp would be most of its import time.
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
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_KNOWN_EXTRAS = frozenset({"connect_timeout", "read_timeout", "retry_limit", "retry_delay"})

_T = TypeVar("_T")

_logged_sources: set[tuple[str, str, str]] = set()
"""Where the key and the API came from, for each answer this process has logged: each is logged once,
however many hooks resolve it. A triggerer resolves one per trigger, thousands after a restart."""


@dataclass(frozen=True)
class ClientSettings:
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


def _retry_options(settings: ClientSettings, *, idempotent: bool) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(settings.retry_limit + 1),
        "wait": _WaitRetryAfterOrBackoff(settings.retry_delay),
        "retry": retry_if_exception(partial(is_retryable_error, idempotent=idempotent)),
        "before_sleep": _log_retry,
        "reraise": True,
    }


def retry_after_seconds(value: str | None) -> float | None:
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


def without_query(url: str) -> str:
    """A URL fit for logs and errors: presigned query strings carry credentials of their own."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def response_chunks(response: requests.Response, url: str) -> Iterator[bytes]:
    """A streamed response's body in large blocks; a failure mid-body becomes a WaveSpeedConnectionError."""
    try:
        yield from response.iter_content(chunk_size=TRANSFER_CHUNK_BYTES)
    except requests.RequestException as error:
        raise _requests_error(error, url) from error


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
class _SharedSession:
    """A loop's shared session and how many entered hooks use it."""

    session: aiohttp.ClientSession
    users: int = 0


# One aiohttp session per event loop, shared by every entered hook (and so every trigger) on it. The
# session carries no credentials (each request sends its own headers), so triggers of different
# connections share its connection pool safely.
_shared_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedSession] = weakref.WeakKeyDictionary()


def _join_shared_session() -> _SharedSession:
    """Count one more user of the running loop's shared session, created on first use.

    Synchronous on purpose: no other coroutine runs between finding the session and counting the
    user, so a session being closed by its last user is never handed out.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    shared = _shared_sessions.get(loop)
    if shared is None:
        shared = _SharedSession(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)))
        _shared_sessions[loop] = shared
    shared.users += 1
    return shared


async def _leave_shared_session(shared: _SharedSession) -> None:
    """Count one user less; the last to leave closes the session.

    The triggerer's loop outlives its triggers, so there the session lives as long as any trigger
    runs; ``dag.test()`` runs each trigger in a short-lived loop, which must not be left with an open
    session behind it. The session is unregistered before its close is awaited, so a hook entered
    during the close gets a new one.
    """
    shared.users -= 1
    if shared.users == 0:
        loop = asyncio.get_running_loop()
        if _shared_sessions.get(loop) is shared:
            del _shared_sessions[loop]
        await shared.session.close()


class BaseWaveSpeedHook(BaseHook):
    """Connection, auth, HTTP and retries of WaveSpeed's API; the API methods are WaveSpeedHook's.

    Nothing is looked up until the first request, so building a hook at DAG parse time costs
    nothing. The async methods need the hook entered (``async with hook:``), which joins the event
    loop's shared session for the block. The arguments are WaveSpeedHook's.
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
        self._settings: ClientSettings | None = None
        self._shared_session: _SharedSession | None = None
        self._async_entries = 0

    # -- connection -------------------------------------------------------------------------------

    def _client_settings(self) -> ClientSettings:
        if self._settings is None:
            try:
                connection = self.get_connection(self.wavespeed_conn_id)
            except AirflowNotFoundException:
                connection = None
            self._settings = self._settings_from(connection)
        return self._settings

    async def _aclient_settings(self) -> ClientSettings:
        """The async twin of :meth:`_client_settings`: never a sync lookup inside the event loop."""
        if self._settings is None:
            try:
                connection = await get_async_connection(self.wavespeed_conn_id, hook=self)
            except AirflowNotFoundException:
                connection = None
            self._settings = self._settings_from(connection)
        return self._settings

    def _settings_from(self, connection: Any | None) -> ClientSettings:
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
        sources = (key_source, base_url, base_url_source)
        if sources not in _logged_sources:
            _logged_sources.add(sources)
            # Where the key and the API come from, never the key itself.
            log.info("WaveSpeed API key from %s; API %s from %s", *sources)
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

        return ClientSettings(
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

    def _send(self, method: str, url: str, *, shown_url: str | None = None, **kwargs: Any) -> requests.Response:
        """One request with the connection's timeouts; a transport failure becomes a WaveSpeedConnectionError.

        :param shown_url: the URL errors name, when ``url`` carries credentials in its query.
        """
        settings = self._client_settings()
        try:
            return self._session.request(
                method, url, timeout=(settings.connect_timeout, settings.read_timeout), **kwargs
            )
        except requests.RequestException as error:
            raise _requests_error(error, shown_url or url) from error

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
        parse: Callable[..., _T],
    ) -> _T:
        """Send one API request (with retries unless ``retry`` is False) and return ``parse(data, url=url)``.

        ``parse`` reads the envelope's ``data`` inside each attempt, so an answer whose envelope is
        sound but whose ``data`` is garbled (a proxy's, or damaged on the way) is repeated like any
        other malformed answer, when repeating is safe (:func:`is_retryable_error`).
        """
        settings = self._client_settings()
        url = f"{settings.base_url}{path}"

        def send_once() -> _T:
            response = self._send(method, url, json=json_body, params=params, headers=settings.auth_headers())
            data = parse_envelope(
                http_status=response.status_code,
                body=response.content,
                url=url,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                key_source=settings.key_source,
            )
            return parse(data, url=url)

        if not retry:
            return send_once()
        return self._with_retries(settings, send_once, idempotent=idempotent)

    @staticmethod
    def _with_retries(settings: ClientSettings, attempt: Callable[[], _T], *, idempotent: bool) -> _T:
        return Retrying(**_retry_options(settings, idempotent=idempotent))(attempt)

    # -- async HTTP (the triggerer) ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Join the running loop's shared session for the block (and open it if no one else has)."""
        if self._async_entries == 0:
            self._shared_session = _join_shared_session()
        self._async_entries += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._async_entries -= 1
        if self._async_entries == 0 and self._shared_session is not None:
            shared, self._shared_session = self._shared_session, None
            await _leave_shared_session(shared)

    async def _acall(self, method: str, path: str, *, idempotent: bool) -> Any:
        """The async twin of :meth:`_call`, over the loop's shared session."""
        import aiohttp

        if self._shared_session is None:
            raise RuntimeError(
                f"{type(self).__name__}'s async methods run inside `async with hook:`, which holds the event "
                "loop's shared aiohttp session open for them."
            )
        session = self._shared_session.session
        settings = await self._aclient_settings()
        url = f"{settings.base_url}{path}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
        )

        async def send_once() -> Any:
            try:
                async with session.request(method, url, headers=settings.auth_headers(), timeout=timeout) as response:
                    body = await response.read()
            except (TimeoutError, aiohttp.ClientError) as error:
                raise _aiohttp_error(error, url) from error
            return parse_envelope(
                http_status=response.status,
                body=body,
                url=url,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                key_source=settings.key_source,
            )

        if settings.retry_limit == 0:
            # The trigger's case: it owns retrying. A tenacity wrapper around its single attempt would
            # leave cyclic garbage on every poll, and with thousands of polls in one triggerer that
            # sets off full collections, which pause every trigger's loop.
            return await send_once()
        return await AsyncRetrying(**_retry_options(settings, idempotent=idempotent))(send_once)


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
