"""How a prediction will end, decided when it is submitted.

Tests steer the outcome through input URLs, so any documented failure can be asked for through the
ordinary submit call (the emulator never fetches foreign URLs, so the URLs need not exist):

- a URL whose host ends in ``.invalid`` fails with code 1402, "Media access failed: <field> URL is
  not publicly accessible: <url>"; so does a URL of the emulator's own ``/media/`` that does not
  exist (for example an upload from an earlier run);
- ``emulator_fail=<code>`` in a URL's query fails with that task error code and the message of the
  documented error-code table (codes in `TASK_ERRORS`, and 1402);
- ``emulator_nsfw=1`` completes with ``has_nsfw_contents: [true]``;
- ``emulator_seconds=<float>`` sets how long that prediction takes from processing to its end.

A failed task is not an HTTP error: its envelope still says ``code: 200`` and the failure is in
``data.status``, ``data.error`` and ``data.code``, as on the real API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from wavespeed_emulator.envelope import ApiError

if TYPE_CHECKING:
    import random
    from collections.abc import Collection, Mapping

FAIL_TRIGGER = "emulator_fail"
NSFW_TRIGGER = "emulator_nsfw"
SECONDS_TRIGGER = "emulator_seconds"

MEDIA_ACCESS_FAILED = 1402
TASK_EXECUTION_FAILED = 1403

TASK_ERRORS: dict[int, str] = {
    1200: "Content moderation: the input was flagged by the safety checker; modify the input",
    1401: "Invalid parameter: the model rejected an input value",
    TASK_EXECUTION_FAILED: "Task execution failed",
    1405: "Task failed",
    5000: "Internal error; retry with backoff",
    5003: "Service unavailable; retry with backoff",
    5004: "Timeout: the task did not finish in time; retry or reduce the input",
}
"""Task-level error codes of WaveSpeed's error-code page, with the emulator's message for each.

1402 (media access failed) is not here because its message names the field and URL at fault.
"""


@dataclass(frozen=True)
class Outcome:
    """How long a prediction runs once processing, and whether it fails."""

    seconds: float
    error_code: int | None = None
    error: str = ""
    nsfw: bool = False

    @property
    def failed(self) -> bool:
        return self.error_code is not None


def plan_outcome(
    inputs: Mapping[str, Any],
    *,
    seconds_range: tuple[float, float],
    rng: random.Random,
    unreadable_fields: Collection[str],
) -> Outcome:
    """Decide a new prediction's outcome from its inputs' trigger URLs.

    ``unreadable_fields`` name inputs that point at missing files of the emulator's own; other
    URLs count as readable unless their host ends in ``.invalid`` (the emulator never fetches them).
    The duration is drawn from ``rng`` for every prediction, trigger or not, so one seed gives one
    sequence. Raises `ApiError` 400 for a malformed trigger, so a typo in a test fails loudly.
    """
    seconds = rng.uniform(*seconds_range)
    failure: tuple[int, str] | None = None
    nsfw = False
    for field, value in inputs.items():
        url = _http_url(value)
        if url is None:
            continue
        triggers = parse_qs(url.query)
        if SECONDS_TRIGGER in triggers:
            seconds = _seconds_trigger(triggers[SECONDS_TRIGGER][-1])
        nsfw = nsfw or triggers.get(NSFW_TRIGGER, ["0"])[-1] == "1"
        if failure is None:
            failure = _failure_trigger(field, value, url, triggers, field in unreadable_fields)
    if failure is None:
        return Outcome(seconds=seconds, nsfw=nsfw)
    code, message = failure
    return Outcome(seconds=seconds, error_code=code, error=message)


def _http_url(value: Any) -> SplitResult | None:
    if not isinstance(value, str):
        return None
    url = urlsplit(value)
    return url if url.scheme in ("http", "https") and url.hostname else None


def _seconds_trigger(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ApiError(400, f"Invalid {SECONDS_TRIGGER}={raw!r}: expected a non-negative number of seconds")
    return seconds


def _failure_trigger(
    field: str,
    value: str,
    url: SplitResult,
    triggers: Mapping[str, list[str]],
    unreadable: bool,
) -> tuple[int, str] | None:
    code = _fail_code(triggers[FAIL_TRIGGER][-1]) if FAIL_TRIGGER in triggers else None
    if code is not None and code != MEDIA_ACCESS_FAILED:
        return code, TASK_ERRORS[code]
    if code == MEDIA_ACCESS_FAILED or unreadable or (url.hostname or "").endswith(".invalid"):
        return MEDIA_ACCESS_FAILED, f"Media access failed: {field} URL is not publicly accessible: {value}"
    return None


def _fail_code(raw: str) -> int:
    code = int(raw) if raw.isdigit() else None
    if code is None or (code not in TASK_ERRORS and code != MEDIA_ACCESS_FAILED):
        known = ", ".join(str(known_code) for known_code in sorted((*TASK_ERRORS, MEDIA_ACCESS_FAILED)))
        raise ApiError(400, f"Invalid {FAIL_TRIGGER}={raw!r}: expected one of {known}")
    return code
