"""How often to ask WaveSpeed whether a prediction is done.

A lipsync job runs from under a minute to a quarter of an hour. A fixed 1 s interval (the SDK's
default) costs ~900 requests for a 15-minute job; a fixed long interval delays short jobs. So the
interval grows with the time already waited: it stays at ``poll_interval`` at first, then becomes a
tenth of the elapsed time, capped at ``max_poll_interval``. A completion is therefore noticed
within about 10% of the job's own duration, and a 15-minute job costs ~45 requests.

Both the worker's polling (the hook) and the triggerer's (the trigger) use this one schedule.

A check that fails for a transient reason (WaveSpeed down, a gateway error, a refused or timed-out
connection, a garbled answer) is not the wait's end: the prediction is paid for and runs on at
WaveSpeed whatever the network does. The next check is then spaced by :func:`next_retry_delay`,
exponential from ``poll_interval`` with jitter (so a fleet of waits does not hammer a recovering
API in step), but never longer than ``max_poll_interval``: once the API answers again, a finished
prediction is noticed within one ``max_poll_interval``.
"""

from __future__ import annotations

import random
import time
from typing import Any, Protocol


class _Log(Protocol):
    """A stdlib logger, or the structlog one Airflow 3 gives a trigger."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


# The share of the time already waited that the next interval may be: the detection delay bound.
GROWTH_FRACTION = 0.1

DEFAULT_POLL_INTERVAL = 5.0
"""WaveSpeed asks for at least 5 s between checks of a video task."""

DEFAULT_MAX_POLL_INTERVAL = 60.0


def next_poll_delay(elapsed: float, *, poll_interval: float, max_poll_interval: float) -> float:
    """Seconds to wait before the next status check, ``elapsed`` seconds after the submit."""
    return min(max_poll_interval, max(poll_interval, elapsed * GROWTH_FRACTION))


def check_poll_intervals(poll_interval: float, max_poll_interval: float) -> None:
    """Raise a ValueError naming the argument unless both intervals make sense together."""
    if not poll_interval > 0:
        raise ValueError(f"poll_interval={poll_interval!r} must be a positive number of seconds")
    if not max_poll_interval >= poll_interval:
        raise ValueError(f"max_poll_interval={max_poll_interval!r} must be at least poll_interval={poll_interval!r}")


# Each delay is drawn from [1 - JITTER_FRACTION, 1] of its exponential step: enough to spread a
# fleet's checks apart, never so much that a step is skipped.
JITTER_FRACTION = 0.5


def next_retry_delay(
    failures: int,
    *,
    poll_interval: float,
    max_poll_interval: float,
    retry_after: float | None = None,
    draw: random.Random | None = None,
) -> float:
    """Seconds to wait before checking again after ``failures`` failed checks in a row.

    Doubles from ``poll_interval`` with jitter, honours the server's ``Retry-After`` when it is
    longer, and is capped at ``max_poll_interval`` either way: a Retry-After longer than that is
    shortened, because the cap is the promise of how soon a recovery is noticed.
    """
    step = poll_interval * 2 ** min(failures - 1, 32)
    jitter = 1.0 - JITTER_FRACTION * (draw or random).random()
    return min(max_poll_interval, max(step * jitter, retry_after or 0.0))


class TransientFailures:
    """The transient failures in a row of one wait: how long to back off, and one log line each.

    Used by the worker's wait and the trigger alike, so both ride out an outage the same way. On
    the success path it costs one attribute test: a poll that succeeds allocates nothing here.

    :param request_id: the prediction waited for, for the log lines.
    """

    def __init__(self, request_id: str, *, poll_interval: float, max_poll_interval: float) -> None:
        self.request_id = request_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.count = 0
        self.first_failed_at = 0.0

    def failed(self, error: BaseException, log: _Log) -> float:
        """Count a failed check, log it once, and return the seconds to wait before the next."""
        self.count += 1
        if self.count == 1:
            self.first_failed_at = time.time()
        delay = next_retry_delay(
            self.count,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            retry_after=getattr(error, "retry_after", None),
        )
        log.warning(
            "Status check of WaveSpeed prediction %s failed (%s in a row, for %.0f s): %s. The prediction "
            "is paid for and keeps running at WaveSpeed; checking again in %.1f s.",
            self.request_id,
            self.count,
            time.time() - self.first_failed_at,
            error,
            delay,
        )
        return delay

    def recovered(self, status: str, log: _Log) -> None:
        """After a check that WaveSpeed answered: end a run of failures, saying how long it lasted."""
        if not self.count:
            return
        log.info(
            "WaveSpeed answered again after %d failed status checks over %.0f s; prediction %s is %s",
            self.count,
            time.time() - self.first_failed_at,
            self.request_id,
            status,
        )
        self.count = 0
