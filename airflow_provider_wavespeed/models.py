"""WaveSpeed's API objects, parsed once.

Every response body passes through :func:`parse_envelope`, and every prediction through
:meth:`Prediction.from_api`; no other module indexes ``["data"]["status"]``. Anything that is not
the documented shape becomes a typed error from :mod:`airflow_provider_wavespeed.exceptions`,
never a ``KeyError`` or ``JSONDecodeError``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pendulum

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionOutputError,
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedInsufficientBalanceError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedUnavailableError,
)

log = logging.getLogger(__name__)

UNAVAILABLE_API_CODE = 5003
"""WaveSpeed's envelope code for "Service Unavailable: try again later" (its error-code page)."""

# How much of an unexpected body an error message quotes: enough to recognise a gateway's page.
_BODY_EXCERPT_CHARS = 200
_MALFORMED_HINT = "The answer is not what WaveSpeed documents (damaged on the way, or a proxy's): retry later."
# An integer as WaveSpeed writes one in a string: ASCII digits only (str.isdigit() also accepts "²"
# and other digits that int() refuses), at most 18 (int() refuses over 4,300; no WaveSpeed integer
# comes near 18).
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")
# Inferred: WaveSpeed documents no answer for a submit the balance cannot cover. HTTP 402 (Payment
# Required) is what other inference APIs send (sync.so among them); otherwise any refusal whose
# message says the balance or credit is short counts, whatever its status.
_INSUFFICIENT_BALANCE_STATUS = 402
_INSUFFICIENT_BALANCE_MESSAGE = re.compile(
    r"insufficient[\s_-]*(balance|funds|credits?)|not[\s_-]+enough[\s_-]+(balance|funds|credits?)"
    r"|(balance|credits?)[\s_-]+(is[\s_-]+)?(too[\s_-]+low|not[\s_-]+enough|insufficient)|top[\s_-]?up",
    re.IGNORECASE,
)


class PredictionStatus(StrEnum):
    """The statuses WaveSpeed documents, plus the terminal ones the official SDK knows."""

    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DELETED = "deleted"

    @property
    def is_failure(self) -> bool:
        return self in _FAILURE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self is PredictionStatus.COMPLETED or self.is_failure


_FAILURE_STATUSES = frozenset(
    {PredictionStatus.FAILED, PredictionStatus.CANCELLED, PredictionStatus.TIMEOUT, PredictionStatus.DELETED}
)
_KNOWN_STATUSES = {status.value: status for status in PredictionStatus}
_unknown_statuses_logged: set[str] = set()


@dataclass(frozen=True)
class Prediction:
    """One WaveSpeed prediction (a "task"), as the result and submit endpoints describe it.

    ``status`` keeps WaveSpeed's raw string so that a status this provider does not know yet is
    not lost; :attr:`state` maps it onto :class:`PredictionStatus`, and an unknown one counts as
    still running (the official SDK does the same), logged once per value.
    """

    id: str
    model: str
    status: str
    outputs: tuple[str, ...] = ()
    has_nsfw_contents: tuple[bool, ...] = ()
    result_url: str = ""
    created_at: pendulum.DateTime | None = None
    error: str = ""
    error_code: int | None = None
    inference_ms: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def state(self) -> PredictionStatus | None:
        """The status as an enum member, or None when WaveSpeed sent one this provider does not know."""
        return _KNOWN_STATUSES.get(self.status)

    @property
    def is_completed(self) -> bool:
        return self.state is PredictionStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        state = self.state
        return state is not None and state.is_failure

    @property
    def is_terminal(self) -> bool:
        return self.is_completed or self.is_failed

    def raise_for_failure(self) -> None:
        """Raise :class:`PredictionFailedError` if the prediction ended in a failure status."""
        if self.is_failed:
            raise PredictionFailedError(
                request_id=self.id, status=self.status, error=self.error, error_code=self.error_code
            )

    def raise_for_unusable_output(self, *, fail_on_nsfw: bool) -> None:
        """Raise :class:`PredictionOutputError` for a completed prediction whose outputs cannot be used."""
        if not self.outputs:
            raise PredictionOutputError(
                f"WaveSpeed prediction {self.id} is '{self.status}' but returned no outputs; nothing to "
                "pass on. Look at it in WaveSpeed's dashboard; running the task that submitted it again "
                "submits a new prediction.",
                request_id=self.id,
            )
        if fail_on_nsfw and any(self.has_nsfw_contents):
            raise PredictionOutputError(
                f"WaveSpeed flagged the output of prediction {self.id} as NSFW (has_nsfw_contents="
                f"{list(self.has_nsfw_contents)}) and fail_on_nsfw=True. Check the inputs (a retry submits "
                "anew), or set fail_on_nsfw=False to accept flagged outputs; this one stays available: "
                f"PredictionSensor(request_id='{self.id}') returns it.",
                request_id=self.id,
            )

    def summary(self) -> dict[str, Any]:
        """The small, JSON-safe result a task returns through XCom: references, never media bytes."""
        return {
            "request_id": self.id,
            "model": self.model,
            "status": self.status,
            "outputs": list(self.outputs),
            "has_nsfw_contents": list(self.has_nsfw_contents),
            "inference_ms": self.inference_ms,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    @classmethod
    def from_api(cls, data: Any, *, url: str = "", http_status: int = 200) -> Prediction:
        """Build a prediction from the ``data`` object of an envelope (or a webhook payload).

        :raises WaveSpeedMalformedResponseError: ``data`` is not an object or has no ``id``.
        """
        if not isinstance(data, dict):
            raise WaveSpeedMalformedResponseError(
                f"WaveSpeed response from {url or 'the API'} has no prediction object in 'data' "
                f"(got {type(data).__name__}). {_MALFORMED_HINT}",
                http_status=http_status,
                url=url,
            )
        request_id = data.get("id")
        if not isinstance(request_id, str) or not request_id:
            raise WaveSpeedMalformedResponseError(
                f"WaveSpeed response from {url or 'the API'} has no prediction id ('data.id' is {request_id!r}). "
                f"{_MALFORMED_HINT}",
                http_status=http_status,
                url=url,
            )
        status = str(data.get("status") or "")
        if status not in _KNOWN_STATUSES and status not in _unknown_statuses_logged:
            _unknown_statuses_logged.add(status)
            log.warning(
                "WaveSpeed reported status %r for prediction %s, which this provider does not know; "
                "treating it as still running.",
                status,
                request_id,
            )
        urls = data.get("urls")
        timings = data.get("timings")
        return cls(
            id=request_id,
            model=str(data.get("model") or ""),
            status=status,
            outputs=tuple(str(output) for output in _as_list(data.get("outputs"))),
            has_nsfw_contents=tuple(bool(flag) for flag in _as_list(data.get("has_nsfw_contents"))),
            result_url=str(urls.get("get") or "") if isinstance(urls, dict) else "",
            created_at=_parse_timestamp(data.get("created_at")),
            error=str(data.get("error") or ""),
            error_code=_as_int(data.get("code")),
            inference_ms=_as_int(timings.get("inference")) if isinstance(timings, dict) else None,
            raw=data,
        )


def parse_envelope(
    *, http_status: int, body: bytes, url: str, retry_after: float | None = None, key_source: str = ""
) -> Any:
    """Return the ``data`` of a WaveSpeed envelope ``{code, message, data}``, or raise its error.

    A task that failed still comes back as HTTP 200 with envelope ``code`` 200: that is a
    successful *request* about a failed *prediction*, so it is returned, not raised; the
    prediction's status decides.

    :param retry_after: the response's ``Retry-After`` in seconds, passed on to 429/5xx errors.
    :param key_source: where the API key came from, named by a 401/403 error (e.g. "the password
        (API Key) of the WaveSpeed connection 'wavespeed_default'").
    """
    payload, decode_problem = _decode_json(body)
    if http_status >= 400:
        api_code, api_message = _envelope_code_and_message(payload)
        if decode_problem:
            api_message = _describe_unexpected_body(body, decode_problem)
        raise _api_error(http_status, api_code, api_message, url, retry_after, key_source)
    if decode_problem:
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed answered {url} with HTTP {http_status} but {_describe_unexpected_body(body, decode_problem)}. "
            f"{_MALFORMED_HINT}",
            http_status=http_status,
            url=url,
        )
    if not isinstance(payload, dict) or "code" not in payload:
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed answered {url} with HTTP {http_status} but the body is not the documented "
            f"envelope {{code, message, data}}: {_excerpt(body)}. {_MALFORMED_HINT}",
            http_status=http_status,
            url=url,
        )
    api_code, api_message = _envelope_code_and_message(payload)
    if api_code != 200:
        raise _api_error(http_status, api_code, api_message, url, retry_after, key_source)
    return payload.get("data")


def _api_error(
    http_status: int, api_code: int | None, api_message: str, url: str, retry_after: float | None, key_source: str
) -> WaveSpeedAPIError:
    """Map a failed request onto the error class that decides retrying; the envelope code counts too."""
    # Under HTTP 200 an HTTP-like envelope code (e.g. 429) still says what kind of failure it is;
    # task codes such as 1401 are not HTTP statuses.
    http_like_code = api_code if api_code is not None and 400 <= api_code <= 599 else None
    effective = http_status if http_status >= 400 else (http_like_code or http_status)
    # "HTTP 200, code 500" when the envelope's code is not the HTTP status: both are what WaveSpeed said.
    status = f"HTTP {http_status}" + (f", code {api_code}" if api_code is not None and api_code != http_status else "")
    detail = f"{status}: {api_message or 'no message'}"
    common: dict[str, Any] = {
        "http_status": http_status,
        "api_code": api_code,
        "api_message": api_message,
        "url": url,
        "retry_after": retry_after,
    }
    # A 401 is about the key, even when it mentions a top-up (a key is activated by one); a 403 or
    # any other refusal that says the balance is short is about funds.
    if effective != 401 and says_insufficient_balance(effective, api_message):
        return WaveSpeedInsufficientBalanceError(
            f"WaveSpeed refused the request to {url} for lack of funds ({detail}); nothing was created or "
            "charged. Top up the account at wavespeed.ai, then run the task again.",
            **common,
        )
    if effective in (401, 403):
        return WaveSpeedAuthError(
            f"WaveSpeed rejected the API key ({detail}). Check "
            f"{key_source or 'the password (API Key) of the WaveSpeed connection'}: the key must exist, be "
            "activated by a top-up, and belong to an account that is not suspended.",
            **common,
        )
    if effective == 404:
        return WaveSpeedNotFoundError(f"WaveSpeed found nothing at {url} ({detail})", **common)
    if effective == 429:
        return WaveSpeedRateLimitError(
            f"WaveSpeed rate limit hit at {url} ({detail}); the request was not accepted. "
            "Lower the concurrency (pool or max_active_tis_per_dag) or raise the account level.",
            **common,
        )
    if effective == 503 or api_code == UNAVAILABLE_API_CODE:
        return WaveSpeedUnavailableError(
            f"WaveSpeed is unavailable at {url} ({detail}); the request was not processed. Retry later.",
            **common,
        )
    if effective >= 500:
        return WaveSpeedServerError(
            f"WaveSpeed server error at {url} ({detail}). The failure is WaveSpeed's or a proxy's, not the "
            "request's: retry later.",
            **common,
        )
    return WaveSpeedAPIError(f"WaveSpeed refused the request to {url} ({detail})", **common)


def says_insufficient_balance(status: int, api_message: str) -> bool:
    """Whether a refusal says the account cannot pay: HTTP (or envelope code) 402, or a message
    such as "insufficient balance" / "not enough credits" / "please top up" (inferred, see above)."""
    return status == _INSUFFICIENT_BALANCE_STATUS or bool(_INSUFFICIENT_BALANCE_MESSAGE.search(api_message))


def _decode_json(body: bytes) -> tuple[Any, str]:
    """Return (payload, "") or (None, what is wrong with the body)."""
    if not body.strip():
        return None, "the body is empty"
    try:
        return json.loads(body), ""
    except UnicodeDecodeError:
        return None, "the body is not text"
    except RecursionError:
        return None, "the body is JSON nested too deeply to be a WaveSpeed envelope"
    except ValueError:
        if body.lstrip()[:1] == b"<":
            return None, "the body is an HTML page, not JSON (a gateway or proxy error page)"
        return None, "the body is not valid JSON (truncated or garbled)"


def _envelope_code_and_message(payload: Any) -> tuple[int | None, str]:
    if not isinstance(payload, dict):
        return None, ""
    message = payload.get("message") or payload.get("error") or ""
    return _as_int(payload.get("code")), str(message)


def _describe_unexpected_body(body: bytes, problem: str) -> str:
    return f"{problem}: {_excerpt(body)}" if body.strip() else problem


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return repr(text[:_BODY_EXCERPT_CHARS] + ("..." if len(text) > _BODY_EXCERPT_CHARS else ""))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _parse_timestamp(value: Any) -> pendulum.DateTime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = pendulum.parse(value)
    except ValueError:  # pendulum's ParserError is a ValueError
        log.warning("Ignoring WaveSpeed timestamp %r that is not ISO 8601", value)
        return None
    return parsed if isinstance(parsed, pendulum.DateTime) else None


@dataclass(frozen=True)
class UploadTicket:
    """The answer of ``POST /api/v3/media/uploads``: where to PUT the bytes, and the file's URL after."""

    download_url: str
    put_url: str
    put_headers: dict[str, str]

    @classmethod
    def from_api(cls, data: Any, *, url: str) -> UploadTicket:
        upload = data.get("upload") if isinstance(data, dict) else None
        download_url = data.get("download_url") if isinstance(data, dict) else None
        if (
            not isinstance(upload, dict)
            or str(upload.get("method", "")).upper() != "PUT"
            or not upload.get("url")
            or not download_url
        ):
            raise WaveSpeedMalformedResponseError(
                f"WaveSpeed's upload ticket from {url} lacks a PUT instruction or a download_url",
                http_status=200,
                url=url,
            )
        headers = upload.get("headers")
        return cls(
            download_url=str(download_url),
            put_url=str(upload["url"]),
            put_headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
        )


def download_url_from_api(data: Any, *, url: str) -> str:
    """The ``data.download_url`` of ``POST /api/v3/media/upload/binary``."""
    download_url = data.get("download_url") if isinstance(data, dict) else None
    if not isinstance(download_url, str) or not download_url:
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed's upload answer from {url} has no download_url", http_status=200, url=url
        )
    return download_url


def balance_from_api(data: Any, *, url: str) -> float:
    """The ``data.balance`` (USD) of ``GET /api/v3/balance``."""
    balance = data.get("balance") if isinstance(data, dict) else None
    if isinstance(balance, bool) or not isinstance(balance, (int, float, str)):
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed's balance answer from {url} has no numeric data.balance", http_status=200, url=url
        )
    try:
        return float(balance)
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed's balance answer from {url} has a non-numeric balance {balance!r}",
            http_status=200,
            url=url,
        ) from None


def predictions_from_api(data: Any, *, url: str) -> list[Prediction]:
    """The ``data.items`` of ``POST /api/v3/predictions`` (the history of the last 7 days)."""
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed's prediction list from {url} has no data.items list", http_status=200, url=url
        )
    return [Prediction.from_api(item, url=url) for item in items]


@dataclass(frozen=True)
class ModelPrice:
    """The answer of ``POST /api/v3/model/price``: what one prediction with these inputs costs.

    ``discounted_price`` is what WaveSpeed charges; ``price`` is the list price before the
    account's discount. WaveSpeed's answer may omit ``discounted_price`` (then it is ``price``)
    and ``currency`` (then USD, the currency of its balance).
    """

    model: str
    price: float
    discounted_price: float
    currency: str = "USD"
    discount_rate: float | None = None

    @classmethod
    def from_api(cls, data: Any, *, model: str, url: str) -> ModelPrice:
        if not isinstance(data, dict):
            raise WaveSpeedMalformedResponseError(
                f"WaveSpeed's price answer from {url} has no object in 'data'. {_MALFORMED_HINT}",
                http_status=200,
                url=url,
            )
        price = _as_amount(data.get("price"))
        if price is None:
            raise WaveSpeedMalformedResponseError(
                f"WaveSpeed's price answer from {url} has no numeric data.price (got {data.get('price')!r}). "
                f"{_MALFORMED_HINT}",
                http_status=200,
                url=url,
            )
        discounted = _as_amount(data.get("discounted_price"))
        return cls(
            model=str(data.get("model_id") or model),
            price=price,
            discounted_price=price if discounted is None else discounted,
            currency=str(data.get("currency") or "USD"),
            discount_rate=_as_amount(data.get("discount_rate")),
        )

    @property
    def charged(self) -> float:
        """What the prediction will cost the account: the discounted price."""
        return self.discounted_price

    def describe(self) -> str:
        """E.g. ``0.1500 USD (list price 0.2000, 25% off)``, for logs and errors."""
        text = f"{self.charged:.4f} {self.currency}"
        if self.discounted_price != self.price:
            rate = f", {self.discount_rate:g}% off" if self.discount_rate is not None else ""
            text += f" (list price {self.price:.4f}{rate})"
        return text


@dataclass(frozen=True)
class CatalogModel:
    """One model of ``GET /api/v3/models``: its path, its price basis and its inputs' JSON schema.

    ``request_schema`` is ``api_schema.api_schemas[0].request_schema`` (``properties``,
    ``required``), the same place the official MCP server reads a model's parameters from.
    """

    model: str
    name: str = ""
    base_price: float | None = None
    formula: str = ""
    request_schema: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def properties(self) -> dict[str, Any]:
        properties = self.request_schema.get("properties")
        return properties if isinstance(properties, dict) else {}

    @property
    def required(self) -> tuple[str, ...]:
        required = self.request_schema.get("required")
        return tuple(str(name) for name in required) if isinstance(required, list) else ()


def catalog_from_api(data: Any, *, url: str) -> list[CatalogModel]:
    """The models of ``GET /api/v3/models`` (``data`` is the list, or an object with ``items``)."""
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise WaveSpeedMalformedResponseError(
            f"WaveSpeed's model catalog from {url} is not a list of models. {_MALFORMED_HINT}", http_status=200, url=url
        )
    models = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str):
            continue  # one odd entry must not hide every other model
        api_schema = item.get("api_schema")
        schemas = api_schema.get("api_schemas") if isinstance(api_schema, dict) else None
        first = schemas[0] if isinstance(schemas, list) and schemas and isinstance(schemas[0], dict) else {}
        request_schema = first.get("request_schema")
        models.append(
            CatalogModel(
                model=item["model_id"],
                name=str(item.get("name") or ""),
                base_price=_as_amount(item.get("base_price")),
                formula=str(item.get("formula") or ""),
                request_schema=request_schema if isinstance(request_schema, dict) else {},
            )
        )
    return models


def _as_amount(value: Any) -> float | None:
    """A price as WaveSpeed may write one: a number or a numeric string."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return amount if amount == amount and abs(amount) != float("inf") else None
