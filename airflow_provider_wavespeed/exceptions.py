"""The typed errors every module of the provider raises.

Each error says what happened, to which request or prediction, and what to do next. None of them
ever carries the API key: messages are built from status codes, API messages and ids only.
"""

from __future__ import annotations


class WaveSpeedError(Exception):
    """Base class of every error raised by the provider."""


class WaveSpeedAPIError(WaveSpeedError):
    """WaveSpeed answered a request with an error.

    :param http_status: the HTTP status of the response.
    :param api_code: the ``code`` of WaveSpeed's envelope, when the body had one.
    :param api_message: the ``message`` of WaveSpeed's envelope (or a short excerpt of the body).
    :param url: the URL that was requested.
    :param request_id: the prediction concerned, when there is one.
    :param retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
    """

    def __init__(
        self,
        summary: str,
        *,
        http_status: int,
        api_code: int | None = None,
        api_message: str = "",
        url: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.retry_after = retry_after
        self.api_code = api_code
        self.api_message = api_message
        self.url = url
        self.request_id = request_id
        super().__init__(summary)


class WaveSpeedAuthError(WaveSpeedAPIError):
    """401 or 403: the key is wrong, not activated, or the account is suspended. Never retried."""


class WaveSpeedNotFoundError(WaveSpeedAPIError):
    """404: an unknown model path or prediction id."""


class WaveSpeedRateLimitError(WaveSpeedAPIError):
    """429: the account's rate limit was hit; the request was not accepted."""


class WaveSpeedServerError(WaveSpeedAPIError):
    """5xx: WaveSpeed or a gateway in front of it failed."""


class WaveSpeedUnavailableError(WaveSpeedServerError):
    """503, or WaveSpeed's code 5003: the service did not process the request ("try again later").

    Unlike 500, 502 and 504, which say nothing about whether an upstream acted on the request, a 503
    means it was not processed (RFC 9110 section 15.6.4), so even a submit may be sent again.
    """


class WaveSpeedInsufficientBalanceError(WaveSpeedAPIError):
    """WaveSpeed refused the request because the account's balance cannot pay for it. Never retried.

    WaveSpeed does not document this answer: which answers count as it is inferred (see
    :func:`airflow_provider_wavespeed.models.says_insufficient_balance`). A refusal created no
    prediction, so it is never an uncertain submit.
    """


class WaveSpeedCostError(WaveSpeedError):
    """A prediction was not submitted because of what it would cost: over ``max_price``, over a
    budget, or more than the balance can pay while keeping ``min_balance_after``.

    :param price: the quote (the discounted price WaveSpeed would charge).
    :param currency: the quote's currency.
    """

    def __init__(self, summary: str, *, price: float, currency: str) -> None:
        self.price = price
        self.currency = currency
        super().__init__(summary)


class WaveSpeedInputSchemaError(WaveSpeedError, ValueError):
    """The inputs do not match the model's ``request_schema`` in WaveSpeed's catalog; nothing was paid.

    :param model: the model path.
    :param field: the input at fault.
    """

    def __init__(self, summary: str, *, model: str, field: str) -> None:
        self.model = model
        self.field = field
        super().__init__(summary)


class WaveSpeedMalformedResponseError(WaveSpeedError):
    """A response that is not the documented envelope: HTML, truncated JSON, a missing ``data.id``.

    :param http_status: the HTTP status of the response.
    :param url: the URL that was requested.
    """

    def __init__(self, summary: str, *, http_status: int, url: str = "") -> None:
        self.http_status = http_status
        self.url = url
        super().__init__(summary)


class WaveSpeedConnectionError(WaveSpeedError):
    """The request failed below HTTP: refused, reset, dropped, or timed out.

    :param request_sent: False only when the request provably never reached the server (the
        connection could not be opened), which is what makes a non-idempotent POST safe to repeat.
    :param url: the URL that was requested.
    """

    def __init__(self, summary: str, *, request_sent: bool, url: str = "") -> None:
        self.request_sent = request_sent
        self.url = url
        super().__init__(summary)


class WaveSpeedSubmissionUncertainError(WaveSpeedError):
    """A submit was sent but its answer was lost, so a paid prediction may exist.

    It is never retried automatically: a second POST would be a second charge.

    :param model: the model path the submit was for.
    :param submitted_at: ISO 8601 UTC time just before the submit, to find the prediction by.
    """

    def __init__(self, summary: str, *, model: str, submitted_at: str) -> None:
        self.model = model
        self.submitted_at = submitted_at
        super().__init__(summary)


class PredictionFailedError(WaveSpeedError):
    """A prediction ended in ``failed``, ``cancelled``, ``timeout`` or ``deleted``.

    :param request_id: the prediction's id.
    :param status: the terminal status WaveSpeed reported.
    :param error: WaveSpeed's error text.
    :param error_code: WaveSpeed's numeric task error code (e.g. 1402), when it gave one.
    """

    def __init__(self, *, request_id: str, status: str, error: str, error_code: int | None) -> None:
        self.request_id = request_id
        self.status = status
        self.error = error
        self.error_code = error_code
        code = f" [code {error_code}]" if error_code is not None else ""
        hint = ERROR_CODE_HINTS.get(error_code or 0, "")
        super().__init__(
            f"WaveSpeed prediction {request_id} ended with status '{status}'{code}: "
            f"{error or 'no error message'}{f'. {hint}' if hint else ''}"
        )


class PredictionOutputError(WaveSpeedError):
    """A prediction completed, but its outputs cannot be used: there are none, or they are flagged
    NSFW and ``fail_on_nsfw`` is set.

    :param request_id: the prediction's id.
    """

    def __init__(self, summary: str, *, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(summary)


class PredictionWaitTimeoutError(WaveSpeedError):
    """Waiting for a prediction took longer than allowed; the prediction itself may still run.

    :param request_id: the prediction's id.
    :param waited_seconds: how long we waited.
    :param last_status: the last status seen.
    :param next_step: what to do about it; by default, wait for it again with ``PredictionSensor``.
        The operator, whose retry resumes the recorded prediction, says so instead.
    """

    def __init__(
        self, *, request_id: str, waited_seconds: float, last_status: str, next_step: str | None = None
    ) -> None:
        from airflow_provider_wavespeed.models import PredictionStatus  # models imports this module

        self.request_id = request_id
        self.waited_seconds = waited_seconds
        self.last_status = last_status
        unknown = last_status not in {status.value for status in PredictionStatus} and last_status != "unknown"
        super().__init__(
            f"Gave up waiting for WaveSpeed prediction {request_id} after {waited_seconds:.0f} s "
            f"(last status '{last_status}'). It may still be running and billed at WaveSpeed: "
            + (
                next_step
                or f"wait for it with PredictionSensor(request_id='{request_id}') instead of submitting again, "
                "or raise the timeout."
            )
            + (
                f" WaveSpeed's status '{last_status}' is one this provider does not know, so it counted as "
                "still running; if it is a final one, upgrade the provider."
                if unknown
                else ""
            )
        )


class StoredOutputError(WaveSpeedError):
    """An ``output_path`` holds, or is claimed for, an output this task must not replace.

    Another task instance of the same DAG run writes the same file, or ``if_output_exists='fail'``
    and an output is already there. Raised before anything is paid for wherever that can be known.
    """


# What to do about WaveSpeed's documented task error codes (https://wavespeed.ai/docs/error-codes).
ERROR_CODE_HINTS: dict[int, str] = {
    1200: "The input was rejected by content moderation: change the input",
    1400: "A required parameter is missing: check the model's inputs",
    1401: "A parameter is invalid: check the model's inputs and their allowed values",
    1402: (
        "WaveSpeed could not download an input: every media URL must be publicly reachable "
        "(pass a local path or object-storage URI instead and the provider uploads it)"
    ),
    1403: "The task failed while executing: check the inputs, then retry",
    1405: "The task failed: check the inputs, then retry",
    5000: "WaveSpeed had an internal error: retry later",
    5003: "WaveSpeed was unavailable: retry later",
    5004: "The task timed out at WaveSpeed: retry, or use shorter inputs",
}


def resume_hint(request_id: str) -> str:
    """What to do when a task fails while its paid prediction may still run or be done.

    True of every task that waits for a prediction with this provider: the operator recorded the
    id and resumes it on its next try, a sensor waits for the same id again.
    """
    return (
        f"WaveSpeed prediction {request_id} is paid for and may still be running or already done: retry or "
        "clear this task and it resumes that prediction without paying again."
    )
