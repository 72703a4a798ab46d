"""Section 2: how many result requests a prediction costs, and how late its end is noticed.

A simulation in virtual time, not a wall-clock run: the real ``PredictionTrigger.run()`` polls a
fake API through its real loop (the schedule of :mod:`airflow_provider_wavespeed.polling`, the
deadline arithmetic, one event per prediction), with the trigger module's ``time.time`` and
``asyncio.sleep`` replaced by a virtual clock that jumps instead of sleeping. A 15-minute
prediction takes microseconds; there is no network, so a request takes no time and the delay is
the schedule's alone.

The baselines are the same trigger with ``poll_interval == max_poll_interval``, which makes the
schedule a fixed interval: 1 s (the official SDK's default) and 5 s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING
from unittest import mock

from airflow_provider_wavespeed.polling import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL
from benchmarks.harness import SectionResult, Table, Target, fmt, median, percentile, ratio, vs

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_wavespeed.models import Prediction

ADAPTIVE = "adaptive (the trigger's default)"
FIXED_1S = "fixed 1 s (official SDK default)"
FIXED_5S = "fixed 5 s"
SCHEDULES: dict[str, tuple[float, float]] = {
    ADAPTIVE: (DEFAULT_POLL_INTERVAL, DEFAULT_MAX_POLL_INTERVAL),
    FIXED_1S: (1.0, 1.0),
    FIXED_5S: (5.0, 5.0),
}
"""(poll_interval, max_poll_interval) of each schedule."""

REQUEST_ID = "simulated"
# A virtual epoch far from 0, so nothing mistakes the simulated times for "unset".
EPOCH = 1_800_000_000.0


@dataclass(frozen=True)
class Scale:
    predictions: int = 400
    shortest: float = 30.0
    longest: float = 900.0
    landmarks: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0)
    jobs_per_landmark: int = 25
    seed: int = 2


FULL = Scale()
SMOKE = Scale(predictions=8, landmarks=(30.0, 900.0), jobs_per_landmark=3)


class VirtualClock:
    """Time that passes only when the trigger sleeps."""

    def __init__(self) -> None:
        self.now = EPOCH

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class FakeResultApi:
    """``aget_prediction`` for one simulated prediction: processing until ``completes_at``, then completed."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.completes_at = math.inf
        self.requests = 0

    async def aget_prediction(self, request_id: str) -> Prediction:
        from airflow_provider_wavespeed.models import Prediction

        self.requests += 1
        done = self.clock.now >= self.completes_at
        return Prediction.from_api(
            {
                "id": request_id,
                "model": "sync/lipsync-1.9.0-beta",
                "status": "completed" if done else "processing",
                "outputs": ["https://cdn.bench.test/output.mp4"] if done else [],
            }
        )


@dataclass
class Outcome:
    duration: float
    requests: int
    delay: float


class VirtualSleepAsyncio:
    """asyncio as the trigger module sees it: ``sleep`` on the virtual clock, the rest the real module.

    Only ``sleep`` is replaced, so the trigger can use any other part of asyncio unchanged.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.sleep = clock.sleep

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)


class Simulator:
    """Runs the real trigger, one prediction at a time, on the virtual clock."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.api = FakeResultApi(self.clock)

    def __enter__(self) -> Simulator:
        from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
        from airflow_provider_wavespeed.triggers import prediction as trigger_module

        self._patches = ExitStack()
        # Thousands of simulated status changes would each log a line; the report is what matters.
        silent = logging.getLogger(f"{__name__}.simulated_trigger")
        silent.disabled = True
        self._patches.enter_context(mock.patch.object(trigger_module.PredictionTrigger, "log", silent))
        self._patches.enter_context(mock.patch.object(trigger_module, "time", SimpleNamespace(time=self.clock.time)))
        self._patches.enter_context(mock.patch.object(trigger_module, "asyncio", VirtualSleepAsyncio(self.clock)))
        # A bound method on the class: every hook the trigger creates asks this fake.
        self._patches.enter_context(mock.patch.object(WaveSpeedHook, "aget_prediction", self.api.aget_prediction))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._patches.close()

    async def wait_for(self, duration: float, schedule: tuple[float, float]) -> Outcome:
        from airflow_provider_wavespeed.triggers.prediction import PredictionTrigger

        submitted_at = self.clock.now
        self.api.completes_at = submitted_at + duration
        self.api.requests = 0
        poll_interval, max_poll_interval = schedule
        trigger = PredictionTrigger(
            request_id=REQUEST_ID,
            end_time=submitted_at + 4 * duration + 3600,
            submitted_at=submitted_at,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        event_at = math.nan
        async for event in trigger.run():
            assert event.payload["status"] == "success", event.payload
            event_at = self.clock.now
        return Outcome(duration, self.api.requests, event_at - self.api.completes_at)


def durations(scale: Scale) -> dict[str, list[float]]:
    """The jobs to simulate: a seeded log-uniform spread, and a few jobs around each landmark.

    Log-uniform gives as many 30-60 s jobs as 7.5-15 min ones. Each landmark is spread over +-5%,
    because a job that ends exactly on a poll of a fixed schedule would show no delay at all.
    """
    rng = random.Random(scale.seed)  # noqa: S311 - a reproducible simulation, not a secret
    low, high = math.log(scale.shortest), math.log(scale.longest)
    jobs = {"spread": [math.exp(rng.uniform(low, high)) for _ in range(scale.predictions)]}
    for landmark in scale.landmarks:
        jobs[f"{landmark:g}"] = [landmark * rng.uniform(0.95, 1.05) for _ in range(scale.jobs_per_landmark)]
    return jobs


async def _simulate(scale: Scale) -> dict[str, dict[str, list[Outcome]]]:
    """Outcomes by schedule, then by group of jobs ("spread", or a landmark's duration)."""
    jobs = durations(scale)
    with Simulator() as simulator:
        return {
            name: {
                group: [await simulator.wait_for(job, schedule) for job in group_jobs]
                for group, group_jobs in jobs.items()
            }
            for name, schedule in SCHEDULES.items()
        }


def run(scale: Scale = FULL) -> SectionResult:
    started = time.monotonic()
    results = asyncio.run(_simulate(scale))
    figures = {name: _summary(groups["spread"]) for name, groups in results.items()}
    figures_by_duration = {
        name: {group: _summary(outcomes) for group, outcomes in groups.items() if group != "spread"}
        for name, groups in results.items()
    }
    table = Table(
        [
            "prediction duration",
            *[header for name in SCHEDULES for header in (f"{name}: requests", f"{name}: detection delay")],
        ]
    )
    baseline = figures[FIXED_1S]
    table.rows.append(
        [
            f"{scale.predictions} jobs, log-uniform {_duration(scale.shortest)}-{_duration(scale.longest)} "
            "(mean; median delay)",
            *_cells(figures, baseline),
        ]
    )
    for landmark in scale.landmarks:
        at = {name: figures_by_duration[name][f"{landmark:g}"] for name in SCHEDULES}
        table.rows.append([f"{_duration(landmark)} +-5% ({scale.jobs_per_landmark} jobs)", *_cells(at, at[FIXED_1S])])
    adaptive = figures[ADAPTIVE]
    fewer = ratio(baseline["requests_mean"], adaptive["requests_mean"])
    targets = [
        Target(
            "at least 5x fewer requests than the fixed 1 s baseline",
            f"{fewer:.1f}x fewer ({adaptive['requests_mean']:.1f} vs {baseline['requests_mean']:.1f} per prediction)",
            fewer >= 5,
        ),
        Target(
            "median detection delay no worse than 10% of the prediction's duration",
            f"median {adaptive['delay_share_median']:.1%} of the duration (p90 {adaptive['delay_share_p90']:.1%}, "
            f"worst {adaptive['delay_share_max']:.1%})",
            adaptive["delay_share_median"] <= 0.10,
        ),
    ]
    return SectionResult(
        key="poll_schedule",
        title="2. Requests per prediction: the adaptive poll schedule against fixed intervals",
        method=(
            "a simulation in virtual time: the real PredictionTrigger.run() against a fake result API, its "
            "clock and sleeps replaced by a virtual clock (no network, so requests take no time). Durations "
            f"are a seeded log-uniform spread of {scale.predictions} lipsync jobs from {_duration(scale.shortest)} "
            f"to {_duration(scale.longest)}, and jobs within 5% of landmark durations. Fixed intervals are the same "
            "trigger with poll_interval = max_poll_interval. Requests are ratios to the fixed 1 s schedule; "
            "delays are shown with their share of the job's duration."
        ),
        table=table,
        targets=targets,
        figures={"spread": figures, "by_duration": figures_by_duration, "scale": scale.__dict__},
        wall_seconds=time.monotonic() - started,
    )


def _summary(outcomes: list[Outcome]) -> dict[str, float]:
    shares = [outcome.delay / outcome.duration for outcome in outcomes]
    return {
        "predictions": len(outcomes),
        "requests_mean": sum(outcome.requests for outcome in outcomes) / len(outcomes),
        "requests_total": sum(outcome.requests for outcome in outcomes),
        "delay_median_s": median(outcome.delay for outcome in outcomes),
        "delay_max_s": max(outcome.delay for outcome in outcomes),
        "delay_share_median": median(shares),
        "delay_share_p90": percentile(shares, 90),
        "delay_share_max": max(shares),
    }


def _cells(figures: dict[str, dict[str, float]], baseline: dict[str, float]) -> Iterator[str]:
    for name in SCHEDULES:
        summary = figures[name]
        yield vs(summary["requests_mean"], baseline["requests_mean"], "req", 1)
        yield f"{fmt(summary['delay_median_s'], 's', 1)} ({summary['delay_share_median']:.1%})"


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"
