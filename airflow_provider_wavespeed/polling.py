"""How often to ask WaveSpeed whether a prediction is done.

A lipsync job runs from under a minute to a quarter of an hour. A fixed 1 s interval (the SDK's
default) costs ~900 requests for a 15-minute job; a fixed long interval delays short jobs. So the
interval grows with the time already waited: it stays at ``poll_interval`` at first, then becomes a
tenth of the elapsed time, capped at ``max_poll_interval``. A completion is therefore noticed
within about 10% of the job's own duration, and a 15-minute job costs ~45 requests.

Both the worker's polling (the hook) and the triggerer's (the trigger) use this one schedule.
"""

from __future__ import annotations

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
