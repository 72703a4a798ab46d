"""Section 6: how long the first PredictionTrigger of a triggerer process stalls the shared event loop.

The triggerer runs every deferred task of the deployment on one loop, and it admits a trigger on
that loop: it imports the trigger's module and starts ``run()``. The first WaveSpeed trigger after
each triggerer start is the one that would pay for importing the hook and aiohttp. Each sample is a
fresh interpreter with Airflow's triggerer imported, as a triggerer process has it before any
WaveSpeed trigger runs: a probe coroutine wakes every millisecond, and how late it wakes while one trigger is
admitted and runs to its event is what every other trigger on the loop would have waited.

The baseline is the same admission with the hook and aiohttp imported on the loop first, as the
trigger did before it imported them in a thread. A third row admits many triggers at once, as a
triggerer does when it starts with a deployment's waits to take over: all of them are admitted
while the first one's import runs, and all start once it ends.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import (
    ChildProcess,
    GcPauses,
    LoopLagMonitor,
    SectionResult,
    Table,
    Target,
    connection_env,
    fmt,
    median,
    receive_from_parent,
    send_to_parent,
    spawned_emulator,
    spread,
    vs,
)

CONN_ID = "wavespeed_bench"
MODEL = "sync/lipsync-1.9.0-beta"
# The emulator never fetches inputs; .test names can never resolve anywhere.
INPUTS = {"video": "https://media.bench.test/interview.mp4", "audio": "https://media.bench.test/dub.wav"}
TRIGGERER_MODULE = "airflow.jobs.triggerer_job_runner"
TRIGGER_MODULE = "airflow_provider_wavespeed.triggers.prediction"
HOOK_MODULES = ("airflow_provider_wavespeed.hooks.wavespeed", "aiohttp")
PROBE_PERIOD = 0.001
LAG_BUDGET_MS = 50.0
"""Section 1's budget for the loop's longest pause."""

SHIPPED = "shipped"
ON_THE_LOOP = "on_the_loop"
RESTART = "restart"
VARIANTS = (SHIPPED, ON_THE_LOOP, RESTART)


@dataclass(frozen=True)
class Scale:
    interpreters: int = 7
    restart_triggers: int = 1_000


FULL = Scale()
SMOKE = Scale(interpreters=1, restart_triggers=20)


def _labels(scale: Scale) -> dict[str, str]:
    return {
        SHIPPED: "PredictionTrigger as shipped (hook and aiohttp imported in a thread)",
        ON_THE_LOOP: "(baseline) the hook and aiohttp imported on the loop first",
        RESTART: f"{scale.restart_triggers:,} PredictionTriggers as shipped, admitted at once (a triggerer's start)",
    }


def run(scale: Scale = FULL) -> SectionResult:
    started = time.monotonic()
    samples: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with spawned_emulator(prediction_seconds=(0.1, 0.1)) as emulator:
        request_ids = _submit(emulator.base_url, emulator.api_key, scale.restart_triggers)
        environment = connection_env(CONN_ID, emulator.base_url, emulator.api_key)
        # Alternating, so that a slower stretch of a shared machine does not fall on one variant only.
        for _ in range(scale.interpreters):
            for variant in samples:
                admitted = request_ids if variant == RESTART else request_ids[:1]
                samples[variant].append(_sample(variant, admitted, environment))
    return _section(samples, scale, time.monotonic() - started)


def _submit(base_url: str, api_key: str, count: int) -> list[str]:
    """Predictions that are complete by the time a child admits their triggers."""
    import requests

    from airflow_provider_wavespeed.models import Prediction, parse_envelope

    url = f"{base_url}/api/v3/{MODEL}"
    request_ids = []
    with requests.Session() as session:
        for _ in range(count):
            response = session.post(url, json=INPUTS, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            data = parse_envelope(http_status=response.status_code, body=response.content, url=url)
            request_ids.append(Prediction.from_api(data, url=url).id)
    time.sleep(0.5)
    return request_ids


def _sample(variant: str, request_ids: list[str], environment: dict[str, str]) -> dict[str, Any]:
    with ChildProcess(__name__, variant, env=environment) as child:
        child.receive(timeout=120)
        child.send({"request_ids": request_ids})
        report = child.receive(timeout=120)
        child.finish()
    return report


def _section(samples: dict[str, list[dict[str, Any]]], scale: Scale, wall: float) -> SectionResult:
    max_ms = {variant: median(s["lag"]["max"] for s in runs) * 1000 for variant, runs in samples.items()}
    p99_ms = {variant: median(s["lag"]["p99"] for s in runs) * 1000 for variant, runs in samples.items()}
    event_ms = {variant: median(s["event_seconds"] for s in runs) * 1000 for variant, runs in samples.items()}
    full_gc_ms = {variant: median(s["gc"]["full_max_ms"] for s in runs) for variant, runs in samples.items()}
    baseline = ON_THE_LOOP
    table = Table(
        [
            "first admission",
            f"max loop lag, median of {scale.interpreters} (vs baseline)",
            "loop lag p99",
            "longest full garbage collection, median",
            "admission to event",
            "events",
        ]
    )
    labels = _labels(scale)
    for variant, runs in samples.items():
        table.rows.append(
            [
                labels[variant],
                vs(max_ms[variant], max_ms[baseline], "ms", 1),
                fmt(p99_ms[variant], "ms", 1),
                fmt(full_gc_ms[variant], "ms", 0),
                fmt(event_ms[variant], "ms", 0),
                ", ".join(sorted({str(s["status"]) for s in runs})),
            ]
        )
    shipped = max_ms[SHIPPED]
    # A full collection stops the loop however few triggers it hosts; what the provider adds is the rest.
    restart_beyond_gc_ms = median(max(0.0, s["lag"]["max"] * 1000 - s["gc"]["full_max_ms"]) for s in samples[RESTART])
    return SectionResult(
        key="first_admission",
        title="6. First admission: the loop's longest pause while the first PredictionTrigger starts",
        method=(
            f"{scale.interpreters} fresh interpreters per row, alternating rows, each with `{TRIGGERER_MODULE}` "
            "imported (what a triggerer process has loaded) and an event loop whose probe asks to wake every "
            f"{PROBE_PERIOD * 1000:g} ms; then, on the loop, as Airflow's TriggerRunner admits a trigger: import "
            f"{TRIGGER_MODULE}, create a PredictionTrigger for a prediction the emulator has completed, and "
            "consume run() to its event. Loop lag = how late the probe woke, from the admission to the event "
            f"(the baseline row imports {' and '.join(HOOK_MODULES)} on the loop at the admission, before run()). "
            f"The third row admits {scale.restart_triggers:,} triggers, one loop step apart as TriggerRunner does, "
            "and spans their admission to the last event. "
            "The longest full garbage collection is the longest generation-2 collection in that span (gc.callbacks)."
        ),
        table=table,
        targets=[
            Target(
                f"the first admission pauses the loop for at most {LAG_BUDGET_MS:g} ms (section 1's budget)",
                f"max {fmt(shipped, 'ms', 1)}, vs {fmt(max_ms[baseline], 'ms', 1)} when importing on the loop",
                shipped <= LAG_BUDGET_MS,
                why=(
                    f"a full garbage collection of the triggerer's heap, set off by the import's allocations, "
                    f"stopped every thread for {fmt(full_gc_ms[SHIPPED], 'ms', 0)} (median); the import itself runs "
                    "off the loop. Section 1's notes say why a provider leaves the collector alone"
                ),
            ),
            Target(
                f"{scale.restart_triggers:,} triggers admitted at once pause the loop at most {LAG_BUDGET_MS:g} ms "
                "beyond its longest full garbage collection",
                f"{fmt(restart_beyond_gc_ms, 'ms', 1)} beyond it (max {fmt(max_ms[RESTART], 'ms', 1)}, "
                f"longest full collection {fmt(full_gc_ms[RESTART], 'ms', 0)}; medians)",
                restart_beyond_gc_ms <= LAG_BUDGET_MS,
            ),
        ],
        figures={
            "max_lag_ms": max_ms,
            "p99_lag_ms": p99_ms,
            "admission_to_event_ms": event_ms,
            "longest_full_gc_ms": full_gc_ms,
            "restart_max_lag_beyond_full_gc_ms": restart_beyond_gc_ms,
            "max_lag_ratio_to_baseline": shipped / max_ms[baseline] if max_ms[baseline] else None,
            "samples": samples,
        },
        wall_seconds=wall,
    )


# -- the child: one loop, the first triggers admitted -----------------------------------------------


async def _admit_first_triggers(variant: str, request_ids: list[str]) -> dict[str, Any]:
    lag = LoopLagMonitor(PROBE_PERIOD)
    lag.start()
    await asyncio.sleep(0.05)  # the probe settles before the admission
    lag.lags.clear()
    admitted = time.perf_counter()
    with GcPauses() as gc_pauses:
        if variant == ON_THE_LOOP:
            for module in HOOK_MODULES:
                importlib.import_module(module)
        trigger_class = importlib.import_module(TRIGGER_MODULE).PredictionTrigger

        async def wait_for(request_id: str) -> str:
            now = time.time()
            trigger = trigger_class(
                request_id=request_id, end_time=now + 60, submitted_at=now, wavespeed_conn_id=CONN_ID, poll_interval=0.2
            )
            status = "no event"
            async for event in trigger.run():
                status = str(event.payload["status"])
            return status

        waits = []
        for request_id in request_ids:
            waits.append(asyncio.create_task(wait_for(request_id)))
            await asyncio.sleep(0)  # TriggerRunner.create_triggers yields between triggers, too
        statuses = await asyncio.gather(*waits)
    event_seconds = time.perf_counter() - admitted
    lags = await lag.stop()
    status = ", ".join(sorted(set(statuses)))
    return {"status": status, "event_seconds": event_seconds, "lag": spread(lags), "gc": gc_pauses.summary()}


def child_main(variant: str) -> None:
    importlib.import_module(TRIGGERER_MODULE)  # what a triggerer has loaded before any WaveSpeed trigger

    send_to_parent({"ready": True})
    job = receive_from_parent()
    if job is None:
        return
    send_to_parent(asyncio.run(_admit_first_triggers(variant, job["request_ids"])))


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child_main(sys.argv[2])
