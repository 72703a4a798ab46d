"""Section 1: N ``PredictionTrigger.run()`` in one event loop, as the triggerer runs them.

Each run is a fresh child interpreter that hosts only the event loop (so its CPU time and memory
are the triggers' own), against a fresh emulator in another process whose predictions take a
seeded random 10-60 s. The parent submits the predictions first, then hands their ids to the
child, which admits the triggers one event-loop step apart as Airflow's ``TriggerRunner`` does
(``await asyncio.sleep(0)`` between creations) and consumes each ``run()`` to its end.

The baselines poll on the same adaptive schedule and parse with the same models, differing only
in how each poll is sent: (a) sync ``requests`` inside the coroutine, (b) ``requests`` in
``asyncio.to_thread``, (c) a new aiohttp session per poll. (a) and (b) give each trigger its own
``requests.Session``, as a trigger calling a sync hook would. They run for a fixed window, not to
the last prediction: their CPU per poll and loop lag are steady-state figures, and a full pass of
each would not fit the 10-minute budget of ``make bench``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_wavespeed.polling import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, next_poll_delay
from benchmarks.harness import (
    KIB,
    ChildProcess,
    GcPauses,
    LoopLagMonitor,
    SectionResult,
    Table,
    Target,
    connection_env,
    cpu_seconds,
    fmt,
    percentile,
    ratio,
    receive_from_parent,
    rss_bytes,
    send_to_parent,
    spawned_emulator,
    spread,
    vs,
)

if TYPE_CHECKING:
    from airflow_provider_wavespeed.models import Prediction
    from wavespeed_emulator import EmulatorProcess

CONN_ID = "wavespeed_bench"
MODEL = "sync/lipsync-1.9.0-beta"
# The emulator never fetches inputs; .test names can never resolve anywhere.
VIDEO = "https://media.bench.test/interview.mp4?take={}"
AUDIO = "https://media.bench.test/dub.wav"
SEED = 5
RSS_SAMPLE_SECONDS = 0.25

PROVIDER = "provider"
SYNC_IN_LOOP = "a"
SYNC_IN_THREAD = "b"
SESSION_PER_POLL = "c"
BASELINES = (SYNC_IN_LOOP, SYNC_IN_THREAD, SESSION_PER_POLL)
LABELS = {
    PROVIDER: "PredictionTrigger (aiohttp, one shared session)",
    SYNC_IN_LOOP: "(a) sync requests inside the coroutine",
    SYNC_IN_THREAD: "(b) requests in asyncio.to_thread",
    SESSION_PER_POLL: "(c) new aiohttp session per poll",
}
REFERENCE = SYNC_IN_THREAD
"""The baseline every ratio of this section is against: the usual way to call a sync client from a trigger."""


@dataclass(frozen=True)
class Scale:
    sizes: tuple[int, ...] = (100, 1_000, 5_000)
    baseline_size: int = 1_000
    prediction_seconds: tuple[float, float] = (10.0, 60.0)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    baseline_window: float = 20.0
    submit_concurrency: int = 64
    airflow_in_every_child: bool = True
    """Baselines load Airflow too, as a triggerer has: the heap's size sets what a garbage collection
    costs. Only the smoke run, whose figures mean nothing, skips it to start faster."""

    @property
    def deadline(self) -> float:
        """How long a full run may take before its unfinished triggers count as errors."""
        longest = self.prediction_seconds[1] + 1.0
        return (
            longest
            + 2 * next_poll_delay(longest, poll_interval=self.poll_interval, max_poll_interval=self.max_poll_interval)
            + 30
        )


FULL = Scale()
SMOKE = Scale(
    sizes=(20,),
    baseline_size=20,
    prediction_seconds=(0.3, 0.8),
    poll_interval=0.2,
    max_poll_interval=1.0,
    baseline_window=1.0,
    airflow_in_every_child=False,
)


# -- the parent -----------------------------------------------------------------------------------


def run(scale: Scale = FULL) -> SectionResult:
    started = time.monotonic()
    runs = [_measure(PROVIDER, size, scale, window=None) for size in scale.sizes]
    runs += [_measure(variant, scale.baseline_size, scale, window=scale.baseline_window) for variant in BASELINES]
    return _section(runs, scale, time.monotonic() - started)


def _measure(variant: str, size: int, scale: Scale, *, window: float | None) -> dict[str, Any]:
    """One run: a fresh emulator, a fresh child hosting the loop; the emulator's counters judge it."""
    # The child imports Airflow while the emulator starts; predictions start ageing only once it is ready.
    with (
        ChildProcess(__name__, variant, str(scale.airflow_in_every_child or variant == PROVIDER)) as child,
        spawned_emulator(prediction_seconds=scale.prediction_seconds, seed=SEED) as emulator,
    ):
        child.receive(timeout=120)
        requests = asyncio.run(_submit(emulator, size, scale.submit_concurrency))
        emulator_cpu = cpu_seconds(emulator.pid)
        child.send(
            {
                "environment": connection_env(CONN_ID, emulator.base_url, emulator.api_key),
                "requests": requests,
                "base_url": emulator.base_url,
                "api_key": emulator.api_key,
                "poll_interval": scale.poll_interval,
                "max_poll_interval": scale.max_poll_interval,
                "window": window,
                "deadline": scale.deadline,
            }
        )
        report = child.receive(timeout=scale.deadline + 120)
        emulator_cpu = cpu_seconds(emulator.pid) - emulator_cpu
        child.finish()
        stats = emulator.stats()
    return _judge(variant, size, window, requests, report, stats, emulator_cpu, scale)


async def _submit(emulator: EmulatorProcess, size: int, concurrency: int) -> list[tuple[str, float]]:
    """Submit ``size`` predictions; return each id with its creation time (the trigger's ``submitted_at``)."""
    import aiohttp

    from airflow_provider_wavespeed.models import Prediction, parse_envelope

    url = f"{emulator.base_url}/api/v3/{MODEL}"
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    gate = asyncio.Semaphore(concurrency)

    async def submit_one(session: aiohttp.ClientSession, take: int) -> tuple[str, float]:
        inputs = {"video": VIDEO.format(take), "audio": AUDIO}
        async with gate, session.post(url, json=inputs, headers=headers) as response:
            body = await response.read()
        prediction = Prediction.from_api(parse_envelope(http_status=response.status, body=body, url=url), url=url)
        assert prediction.created_at is not None
        return prediction.id, prediction.created_at.timestamp()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        return list(await asyncio.gather(*(submit_one(session, take) for take in range(size))))


def _judge(
    variant: str,
    size: int,
    window: float | None,
    requests: list[tuple[str, float]],
    report: dict[str, Any],
    stats: dict[str, Any],
    emulator_cpu: float,
    scale: Scale,
) -> dict[str, Any]:
    """Join what the child saw with what the emulator recorded into the run's figures."""
    polls = int(stats["requests"].get("result", 0))
    submitted_at = dict(requests)
    delays: list[float] = []
    excess: list[float] = []
    for request_id, (status, event_time) in report["events"].items():
        completed_at = stats["predictions"][request_id]["completed_at"]
        if status != "success" or completed_at is None:
            continue
        delays.append(event_time - completed_at)
        interval = next_poll_delay(
            completed_at - submitted_at[request_id],
            poll_interval=scale.poll_interval,
            max_poll_interval=scale.max_poll_interval,
        )
        excess.append(event_time - completed_at - interval)
    lost = 0 if window is not None else size - len(report["events"])
    failures = [status for status, _ in report["events"].values() if status != "success"]
    return {
        "variant": variant,
        "label": LABELS[variant],
        "n": size,
        "window_seconds": window,
        "wall_seconds": report["wall_seconds"],
        "admission_seconds": report["admission_seconds"],
        "cpu_seconds": report["cpu_seconds"],
        "polls": polls,
        "cpu_per_poll_ms": ratio(report["cpu_seconds"] * 1000, polls),
        "loop_lag_ms": {key: value * 1000 if key != "count" else value for key, value in report["lag"].items()},
        "rss_before_bytes": report["rss_before"],
        "rss_in_flight_bytes": report["rss_in_flight"],
        "rss_per_trigger_kib": (report["rss_in_flight"] - report["rss_before"]) / size / KIB,
        "requests_per_prediction": polls / size if window is None else None,
        "detection_delay_s": spread(delays),
        "excess_over_poll_interval_s": spread(excess),
        "errors": len(failures) + len(report["exceptions"]) + lost,
        "error_examples": [*failures[:3], *report["exceptions"][:3]],
        "emulator_cpu_share": ratio(emulator_cpu, report["wall_seconds"]),
        "gc": report["gc"],
        "loop_lag_p999_ms": report["lag_p999"] * 1000,
    }


def _section(runs: list[dict[str, Any]], scale: Scale, wall: float) -> SectionResult:
    reference = next(run for run in runs if run["variant"] == REFERENCE)
    lag_ref = reference["loop_lag_ms"]
    table = Table(
        [
            "how each trigger polls",
            "N",
            "CPU per poll",
            "loop lag p50",
            "loop lag p99",
            "loop lag max",
            "RSS per in-flight trigger",
            "requests per prediction",
            "detection delay p50 / p99",
            "p99 delay beyond the poll interval",
            "errors",
            "full GCs (longest)",
            "emulator CPU",
        ]
    )
    for run in runs:
        lag = run["loop_lag_ms"]
        delay = run["detection_delay_s"]
        windowed = run["window_seconds"] is not None
        table.rows.append(
            [
                run["label"] + (f" (first {run['window_seconds']:g} s)" if windowed else ""),
                f"{run['n']:,}",
                vs(run["cpu_per_poll_ms"], reference["cpu_per_poll_ms"], "ms", 3),
                vs(lag["p50"], lag_ref["p50"], "ms"),
                vs(lag["p99"], lag_ref["p99"], "ms"),
                vs(lag["max"], lag_ref["max"], "ms", 1),
                vs(run["rss_per_trigger_kib"], reference["rss_per_trigger_kib"], "KiB", 1),
                "n/a (windowed)" if windowed else fmt(run["requests_per_prediction"]),
                "n/a (windowed)" if windowed else f"{fmt(delay['p50'], 's')} / {fmt(delay['p99'], 's')}",
                "n/a (windowed)" if windowed else fmt(run["excess_over_poll_interval_s"]["p99"], "s", 3),
                str(run["errors"]),
                f"{run['gc']['full_collections']} ({fmt(run['gc']['full_max_ms'], 'ms', 0)})",
                f"{run['emulator_cpu_share']:.0%} of a core",
            ]
        )
    return SectionResult(
        key="triggerer_scale",
        title="1. Triggerer scale: N PredictionTrigger.run() in one event loop",
        method=(
            f"each row is a fresh child interpreter hosting only the event loop, against a fresh emulator "
            f"process; predictions take a seeded random {scale.prediction_seconds[0]:g}-"
            f"{scale.prediction_seconds[1]:g} s; triggers are admitted one loop step apart, as Airflow's "
            "TriggerRunner does. CPU per poll = the child's process CPU time / the emulator's count of result "
            "GETs (the provider rows over the whole run, the baselines over their window). Loop lag = lateness "
            "of a 10 ms ticker (whose own CPU is in every row). "
            "RSS per trigger = (max VmRSS while all N are in flight - VmRSS before) / N. "
            "Detection delay = the trigger's event time - the emulator's completed_at (one wall clock); "
            "'beyond the poll interval' subtracts the schedule's interval at the moment of completion. "
            f"Ratios are against {LABELS[REFERENCE]} at N={scale.baseline_size:,}; the baselines were run "
            f"for their first {scale.baseline_window:g} s only (a steady state, and the time budget)."
        ),
        table=table,
        targets=_targets(runs, scale),
        figures={"runs": runs, "scale": scale.__dict__ | {"deadline": scale.deadline}},
        wall_seconds=wall,
    )


def _targets(runs: list[dict[str, Any]], scale: Scale) -> list[Target]:
    def provider(size: int) -> dict[str, Any]:
        return next(run for run in runs if run["variant"] == PROVIDER and run["n"] == size)

    reference = next(run for run in runs if run["variant"] == REFERENCE)
    at_base, at_max = provider(scale.baseline_size), provider(max(scale.sizes))
    cheaper = ratio(reference["cpu_per_poll_ms"], at_base["cpu_per_poll_ms"])
    excess_p99 = at_base["excess_over_poll_interval_s"]["p99"]
    return [
        Target(
            f"N={scale.baseline_size:,}: CPU per poll at least 3x lower than (b)",
            f"{cheaper:.1f}x lower ({at_base['cpu_per_poll_ms']:.3f} vs {reference['cpu_per_poll_ms']:.3f} ms)",
            cheaper >= 3,
        ),
        _lag_target(at_base),
        Target(
            f"N={scale.baseline_size:,}: RSS <= 20 KiB per in-flight trigger",
            f"{at_base['rss_per_trigger_kib']:.1f} KiB",
            at_base["rss_per_trigger_kib"] <= 20,
        ),
        Target(
            f"N={scale.baseline_size:,}: detection delay p99 within the current poll interval + 250 ms",
            f"p99 of (delay - interval) = {excess_p99 * 1000:.0f} ms",
            excess_p99 <= 0.25,
        ),
        _lag_target(at_max),
        Target(
            f"N={at_max['n']:,}: no errors",
            f"{at_max['errors']} errors {at_max['error_examples'] or ''}".strip(),
            at_max["errors"] == 0,
        ),
    ]


def _lag_target(run: dict[str, Any]) -> Target:
    lag, gc_pauses = run["loop_lag_ms"], run["gc"]
    return Target(
        f"N={run['n']:,}: loop lag p99 <= 5 ms and max <= 50 ms",
        f"p99 {lag['p99']:.2f} ms, max {lag['max']:.1f} ms",
        lag["p99"] <= 5 and lag["max"] <= 50,
        why=(
            f"the longest garbage-collection pause was {gc_pauses['max_ms']:.0f} ms "
            f"({gc_pauses['full_collections']} full collections; one full collection of this interpreter, "
            f"Airflow imported, took {gc_pauses['full_collection_before_run_ms']:.0f} ms before the run); "
            f"GC took {gc_pauses['total_ms'] / 1000:.1f} s of the loop's {run['cpu_seconds']:.1f} s CPU"
        ),
    )


# -- the child: one event loop, N waiting coroutines ----------------------------------------------

Waiter = Callable[[str, float], Awaitable[tuple[str, float]]]


def _provider_waiter(job: dict[str, Any]) -> Waiter:
    from airflow_provider_wavespeed.triggers.prediction import PredictionTrigger

    async def wait(request_id: str, submitted_at: float) -> tuple[str, float]:
        trigger = PredictionTrigger(
            request_id=request_id,
            end_time=submitted_at + 3600,
            submitted_at=submitted_at,
            wavespeed_conn_id=CONN_ID,
            poll_interval=job["poll_interval"],
            max_poll_interval=job["max_poll_interval"],
        )
        outcome = ("no event", 0.0)
        # Consumed to the end, as the triggerer does: run() closes the shared session after its event.
        async for event in trigger.run():
            outcome = (str(event.payload["status"]), time.time())
        return outcome

    return wait


def _baseline_waiter(variant: str, job: dict[str, Any]) -> Waiter:
    """The trigger's loop with another transport: same schedule, same parsing, same event."""
    import aiohttp
    import requests

    from airflow_provider_wavespeed.models import Prediction, parse_envelope

    headers = {"Authorization": f"Bearer {job['api_key']}"}

    def parse(status: int, body: bytes, url: str) -> Prediction:
        return Prediction.from_api(parse_envelope(http_status=status, body=body, url=url), url=url)

    def get_sync(session: requests.Session, url: str) -> Prediction:
        response = session.get(url, headers=headers, timeout=(10, 60))
        return parse(response.status_code, response.content, url)

    def fetcher(url: str) -> Callable[[], Awaitable[Prediction]]:
        if variant == SESSION_PER_POLL:

            async def per_poll_session() -> Prediction:
                async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
                    body = await response.read()
                return parse(response.status, body, url)

            return per_poll_session
        session = requests.Session()
        session.trust_env = False  # loopback only, whatever proxies the environment names
        if variant == SYNC_IN_THREAD:

            async def in_thread() -> Prediction:
                return await asyncio.to_thread(get_sync, session, url)

            return in_thread

        async def in_loop() -> Prediction:
            return get_sync(session, url)  # blocks the loop: what baseline (a) measures

        return in_loop

    async def wait(request_id: str, submitted_at: float) -> tuple[str, float]:
        fetch = fetcher(f"{job['base_url']}/api/v3/predictions/{request_id}/result")
        while True:
            prediction = await fetch()
            if prediction.is_terminal:
                return ("success" if prediction.is_completed else "failed", time.time())
            elapsed = time.time() - submitted_at
            await asyncio.sleep(
                next_poll_delay(elapsed, poll_interval=job["poll_interval"], max_poll_interval=job["max_poll_interval"])
            )

    return wait


async def _host_triggers(waiter: Waiter, job: dict[str, Any]) -> dict[str, Any]:
    """Admit every trigger, let them run until they end (or the window closes), and measure."""
    requests = [(str(request_id), float(submitted_at)) for request_id, submitted_at in job["requests"]]
    limit = job["window"] if job["window"] is not None else job["deadline"]
    collecting = time.perf_counter()
    gc.collect()
    full_collection = time.perf_counter() - collecting
    events: dict[str, tuple[str, float]] = {}
    exceptions: list[str] = []

    async def consume(request_id: str, submitted_at: float) -> None:
        try:
            events[request_id] = await waiter(request_id, submitted_at)
        except Exception as error:  # noqa: BLE001 - every failure is counted, none stops the run
            exceptions.append(f"{type(error).__name__}: {error}"[:300])

    rss_before = rss_bytes()
    cpu_before = time.process_time()
    started = time.time()
    lag = LoopLagMonitor()
    lag.start()
    with GcPauses() as gc_pauses:
        tasks = []
        for request_id, submitted_at in requests:
            await asyncio.sleep(0)  # TriggerRunner.create_triggers yields between triggers, too
            tasks.append(asyncio.create_task(consume(request_id, submitted_at)))
        admission = time.time() - started
        rss_in_flight = await _peak_rss_until(lambda: bool(events) or time.time() - started >= limit)
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, limit - (time.time() - started)))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        cpu = time.process_time() - cpu_before
        wall = time.time() - started
        lags = await lag.stop()
    return {
        "events": events,
        "exceptions": exceptions,
        "admission_seconds": admission,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "lag": spread(lags),
        "lag_p999": percentile(lags, 99.9),
        "gc": gc_pauses.summary() | {"full_collection_before_run_ms": full_collection * 1000},
        "rss_before": rss_before,
        "rss_in_flight": rss_in_flight,
    }


async def _peak_rss_until(stop: Callable[[], bool]) -> int:
    """The highest RSS sampled until ``stop()`` (the first event): every trigger still in flight."""
    peak = rss_bytes()
    while not stop():
        await asyncio.sleep(RSS_SAMPLE_SECONDS)
        if not stop():
            peak = max(peak, rss_bytes())
    return peak


def child_main(variant: str) -> None:
    send_to_parent({"ready": True})
    job = receive_from_parent()
    if job is None:  # the parent gave up before sending the job
        return
    os.environ.update(job["environment"])  # the connection, as AIRFLOW_CONN_<ID>
    waiter = _provider_waiter(job) if variant == PROVIDER else _baseline_waiter(variant, job)
    send_to_parent(asyncio.run(_host_triggers(waiter, job)))


def _import_for(variant: str, *, with_airflow: bool) -> None:
    """Import what the run needs before the parent submits anything (see ``Scale.airflow_in_every_child``)."""
    needed = ["airflow_provider_wavespeed.models", "aiohttp", "requests"]
    if with_airflow:
        needed += ["airflow_provider_wavespeed.triggers.prediction", "airflow_provider_wavespeed.hooks.wavespeed"]
    for module in needed:
        importlib.import_module(module)


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _import_for(sys.argv[2], with_airflow=sys.argv[3] == "True")
    child_main(sys.argv[2])
