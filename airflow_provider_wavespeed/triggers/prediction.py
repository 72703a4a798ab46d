"""PredictionTrigger: waits for a WaveSpeed prediction in the triggerer without holding a worker slot.

This is the only provider code that runs in the triggerer, where every deferred task of the
deployment shares one event loop: it never blocks (the hook and aiohttp imported in a thread,
aiohttp over the loop's shared session, the connection fetched asynchronously), sends one GET per
poll on the adaptive schedule of :mod:`airflow_provider_wavespeed.polling`, and lets
``CancelledError`` propagate.

It never submits anything: the worker submitted the prediction and handed over its id, so a
triggerer restart re-runs :meth:`PredictionTrigger.run` and only ever repeats idempotent reads.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_wavespeed.exceptions import (
    PredictionWaitTimeoutError,
    WaveSpeedError,
    WaveSpeedNotFoundError,
    resume_hint,
)
from airflow_provider_wavespeed.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    TransientFailures,
    check_poll_intervals,
    next_poll_delay,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_provider_wavespeed.models import Prediction

EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})
"""Every event carries ``status`` (one of these) and ``request_id``."""

_hook_class: type[WaveSpeedHook] | None = None
"""WaveSpeedHook once imported: the first trigger of the process imports it, later ones reuse it."""

_import_turnstiles: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
"""Per event loop (an asyncio lock belongs to one): the triggers waiting for the hook's import."""


async def _wavespeed_hook_class() -> type[WaveSpeedHook]:
    """WaveSpeedHook, imported with aiohttp in a thread the first time.

    Importing them takes long enough to stall the triggerer's loop, and with it every trigger of the
    deployment, at the first admission after each triggerer start. A triggerer admits hundreds of
    triggers before that import ends. They queue on a lock, which the importing trigger holds: they
    neither queue an import thread each (their hand-offs cost the loop CPU), nor all start together
    when it ends (their first polls' set-up would then run in one loop step, long enough to stall
    it). The lock wakes one waiter per loop step, so they start one per step, as they were admitted.
    If the import fails or its trigger is cancelled, the next waiter imports.
    """
    global _hook_class
    if _hook_class is not None:
        return _hook_class
    turnstile = _import_turnstiles.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with turnstile:
        if _hook_class is None:
            _hook_class = await asyncio.to_thread(_import_hook_class)
    return _hook_class


def _import_hook_class() -> type[WaveSpeedHook]:
    import aiohttp  # noqa: F401 - the hook imports it only on first use, which would be on the loop

    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

    return WaveSpeedHook


class PredictionTrigger(BaseTrigger):
    """Poll one WaveSpeed prediction until it ends, then fire exactly one event.

    Events (all carry ``request_id``): ``success`` and ``failed`` with the ``prediction`` as
    WaveSpeed described it; ``timeout`` with the ``last_status`` seen; ``error`` with a ``message``
    (a bad key, an unknown id). Transient failures (WaveSpeed down, 429, 5xx, refused or timed-out
    connections, garbled answers) never end the wait: it checks again with capped backoff until
    ``end_time`` (:mod:`airflow_provider_wavespeed.polling`). :func:`prediction_from_event` turns
    an event back into a result or a typed error.

    :param request_id: the prediction to wait for.
    :param end_time: when to give up, as a wall-clock Unix time. Wall-clock deliberately: the
        trigger is serialized to the metadata database and may resume in another triggerer
        process, where a per-process ``time.monotonic()`` value would mean nothing.
    :param submitted_at: Unix time of the submit, from which the poll interval grows.
    :param wavespeed_conn_id: the Airflow connection holding the API key.
    :param poll_interval: the first interval between polls, in seconds.
    :param max_poll_interval: the longest interval the schedule grows to, and the longest pause
        between checks during an outage, in seconds.
    """

    def __init__(
        self,
        *,
        request_id: str,
        end_time: float,
        submitted_at: float,
        wavespeed_conn_id: str = "wavespeed_default",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        check_poll_intervals(poll_interval, max_poll_interval)
        self.request_id = request_id
        self.end_time = float(end_time)
        self.submitted_at = float(submitted_at)
        self.wavespeed_conn_id = wavespeed_conn_id
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "end_time": self.end_time,
                "submitted_at": self.submitted_at,
                "wavespeed_conn_id": self.wavespeed_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook_class = await _wavespeed_hook_class()
        # The trigger owns retrying: its loop already sleeps between polls, and rides out outages.
        async with hook_class(self.wavespeed_conn_id, retry_limit=0) as hook:
            async for event in self._poll_until_done(hook):
                yield event

    async def _poll_until_done(self, hook: WaveSpeedHook) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_wavespeed.hooks.transport import is_retryable_error

        last_status = ""
        failures = TransientFailures(
            self.request_id, poll_interval=self.poll_interval, max_poll_interval=self.max_poll_interval
        )
        while True:
            try:
                prediction = await hook.aget_prediction(self.request_id)
            # Any failure becomes an event or a later check, never a crashed trigger; CancelledError
            # is a BaseException and propagates.
            except Exception as error:  # noqa: BLE001
                if not is_retryable_error(error):
                    hint = "" if isinstance(error, WaveSpeedNotFoundError) else f" {resume_hint(self.request_id)}"
                    yield self._error(f"Stopped waiting for WaveSpeed prediction {self.request_id}: {error}{hint}")
                    return
                delay = failures.failed(error, self.log)
            else:
                failures.recovered(prediction.status, self.log)
                elapsed = time.time() - self.submitted_at
                if prediction.status != last_status:
                    self.log.info(
                        "WaveSpeed prediction %s: %s -> %s after %.0f s",
                        self.request_id,
                        last_status or "submitted",
                        prediction.status,
                        elapsed,
                    )
                    last_status = prediction.status
                if prediction.is_completed:
                    yield TriggerEvent(
                        {"status": "success", "request_id": self.request_id, "prediction": prediction.raw}
                    )
                    return
                if prediction.is_failed:
                    yield TriggerEvent(
                        {"status": "failed", "request_id": self.request_id, "prediction": prediction.raw}
                    )
                    return
                delay = next_poll_delay(
                    elapsed, poll_interval=self.poll_interval, max_poll_interval=self.max_poll_interval
                )
                # Not kept through the sleep: a parsed answer alive across young collections is
                # promoted to the oldest generation, and with thousands of triggers those promotions
                # set off full collections of the triggerer's whole heap, the loop's longest pauses.
                del prediction
            remaining = self.end_time - time.time()
            if remaining <= 0:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "request_id": self.request_id,
                        "last_status": last_status or "unknown",
                        "waited_seconds": round(time.time() - self.submitted_at, 1),
                    }
                )
                return
            # The last sleep is cut short so the final check lands on the deadline.
            await asyncio.sleep(min(delay, remaining))

    def _error(self, message: str) -> TriggerEvent:
        return TriggerEvent({"status": "error", "request_id": self.request_id, "message": message})

    async def on_kill(self) -> None:
        """Called on Airflow 3.3+ when a user kills the deferred task (never on a triggerer restart).

        WaveSpeed has no cancel endpoint, so the prediction runs (and is billed) to its end; say so
        with its id, and how its result is still collected.
        """
        self.log.warning(
            "Task killed while waiting: WaveSpeed has no cancel API, so the prediction runs on. %s",
            resume_hint(self.request_id),
        )


def prediction_from_event(event: Any) -> Prediction:
    """The completed prediction an event reports, or the typed error it stands for.

    Validates first: ``None``, a non-dict or an unknown status raises instead of silently
    succeeding.

    :raises PredictionFailedError: the prediction ended failed, cancelled, timed out or deleted.
    :raises PredictionWaitTimeoutError: the trigger's deadline passed.
    :raises WaveSpeedError: the trigger stopped on an error, or the event is not one of its own.
    """
    # Imported here: the triggerer imports this module on its event loop, and only a worker needs it.
    from airflow_provider_wavespeed.models import Prediction

    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES or not event.get("request_id"):
        raise WaveSpeedError(
            f"Unexpected event from PredictionTrigger: {event!r}. Expected a dict with 'request_id' and a "
            f"'status' in {sorted(EVENT_STATUSES)}; this is a bug or an incompatible provider upgrade."
        )
    request_id = str(event["request_id"])
    status = event["status"]
    if status == "timeout":
        raise PredictionWaitTimeoutError(
            request_id=request_id,
            waited_seconds=float(event.get("waited_seconds") or 0),
            last_status=str(event.get("last_status") or "unknown"),
            next_step=f"{resume_hint(request_id)} Or raise the task's timeout.",
        )
    if status == "error":
        raise WaveSpeedError(str(event.get("message") or f"PredictionTrigger failed for {request_id}"))
    prediction = Prediction.from_api(event.get("prediction"), url="PredictionTrigger event")
    prediction.raise_for_failure()
    if not prediction.is_completed:
        raise WaveSpeedError(
            f"PredictionTrigger reported '{status}' for prediction {request_id}, whose status is "
            f"'{prediction.status}'; this is a bug."
        )
    return prediction
