"""Section 5: how long a lipsync task holds a worker slot in a real Airflow, deferrable or not.

One DAG run of a real Airflow 3 (api-server, scheduler, triggerer, dag-processor, LocalExecutor,
SQLite; :mod:`devstack.airflow_stack`) runs, side by side against the emulator, deferrable
``LipsyncOperator`` tasks and one poke-mode one (``deferrable=False``) on a 60 s prediction, and
no-op ``PythonOperator`` tasks, the baseline for what Airflow itself costs per task.

Worker-slot time is read from the workers themselves. A LocalExecutor worker titles its process
``airflow worker -- LocalExecutor: <task instance id>`` for exactly as long as it runs a workload,
and ``... <idle>`` otherwise; a thread samples those titles every 20 ms. A deferrable task shows
as two busy spells (up to the deferral, and the resumption), and the sum is its slot time. The
task-log span (first to last line of each execution) is given beside it: the part of the slot the
task's own code and Airflow's pre/post-execute steps take, the rest being process start-up and
reporting.

Deferrable and no-op tasks run in several copies and are compared by their medians: in Airflow
3.3's task supervisor, an execution whose process closes its sockets before it can be reaped
waits out a full ``select`` timeout (``[workers] min_heartbeat_interval``, 5 s) before the worker
is free, and any single execution may be the one that loses that race.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_provider_wavespeed.polling import DEFAULT_POLL_INTERVAL
from benchmarks.harness import SectionResult, Table, Target, connection_env, fmt, median, spawned_emulator, vs

DAG_ID = "wavespeed_bench_worker_slot"
CONN_ID = "wavespeed_bench"
DEFERRABLE, POKE, NOOP = "lipsync_deferrable", "lipsync_poke", "noop"
LABELS = {
    NOOP: "no-op PythonOperator (the baseline)",
    DEFERRABLE: "LipsyncOperator, deferrable=True",
    POKE: "LipsyncOperator, deferrable=False (poke)",
}
WORKER_TITLE_PREFIX = "airflow worker -- LocalExecutor:"
IDLE_TITLE = "<idle>"

DAG_TEMPLATE = '''"""Written by benchmarks/worker_slot.py: every task runs side by side in one DAG run."""

import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.providers.standard.operators.python import PythonOperator

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

AUDIO = "https://media.bench.test/dub.wav"

with DAG(
    dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False
):
    for copy in range({copies}):
        LipsyncOperator(
            task_id=f"{DEFERRABLE}_{{copy}}",
            video=f"https://media.bench.test/deferrable-{{copy}}.mp4",
            audio=AUDIO,
            deferrable=True,
            wavespeed_conn_id="{CONN_ID}",
            poll_interval={poll_interval},
        )
        PythonOperator(task_id=f"{NOOP}_{{copy}}", python_callable=lambda: None)
    LipsyncOperator(
        task_id="{POKE}_0",
        video="https://media.bench.test/poke.mp4",
        audio=AUDIO,
        deferrable=False,
        wavespeed_conn_id="{CONN_ID}",
        poll_interval={poll_interval},
    )
'''


@dataclass(frozen=True)
class Scale:
    prediction_seconds: float = 60.0
    poll_interval: float = DEFAULT_POLL_INTERVAL
    copies: int = 3
    """How many deferrable and no-op tasks run: their medians are compared (see the module's doc)."""
    run_timeout: float = 420.0

    def dag_file(self) -> str:
        return DAG_TEMPLATE.format(
            DAG_ID=DAG_ID,
            DEFERRABLE=DEFERRABLE,
            POKE=POKE,
            NOOP=NOOP,
            CONN_ID=CONN_ID,
            copies=self.copies,
            poll_interval=self.poll_interval,
        )


FULL = Scale()
SMOKE = Scale(prediction_seconds=2.0, poll_interval=0.5, copies=1, run_timeout=240.0)


class WorkerTitleWatcher:
    """Busy spells of LocalExecutor workers, by task instance id, from their process titles.

    Only the workers themselves count (the children of ``executor_pid``): the processes a worker
    forks for a task inherit its title, and would count the same slot twice.
    """

    def __init__(self, executor_pid: int, period: float = 0.020, rescan_every: float = 0.5) -> None:
        self.executor_pid = executor_pid
        self.period = period
        self.rescan_every = rescan_every
        self.spells: dict[str, list[tuple[float, float]]] = {}
        self.workers_seen = 0
        self._running: dict[int, tuple[str | None, float]] = {}
        self._not_workers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-title-watcher", daemon=True)

    def __enter__(self) -> WorkerTitleWatcher:
        self._discover(time.time())  # workers that exist already are known before anything is triggered
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        now = time.time()
        for workload, since in self._running.values():
            if workload is not None:
                self.spells.setdefault(workload, []).append((since, now))
        self._running.clear()

    def wait_until_idle(self, workloads: set[str], timeout: float) -> bool:
        """Wait until no worker runs any of ``workloads``: a task's success is reported before its
        worker is free, and the slot lasts until the worker is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = {workload for workload, _ in self._running.values()} & workloads
            if not busy:
                return True
            time.sleep(self.period)
        return False

    def _watch(self) -> None:
        next_scan = time.time() + self.rescan_every
        while not self._stop.wait(self.period):
            now = time.time()
            with self._lock:
                if now >= next_scan:
                    self._discover(now)
                    next_scan = now + self.rescan_every
                for pid in list(self._running):
                    self._observe(pid, _worker_workload(pid), now)

    def _discover(self, now: float) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in self._running or pid in self._not_workers:
                continue
            workload = _worker_workload(pid)
            if workload == "":
                continue
            if _parent_pid(pid) != self.executor_pid:
                self._not_workers.add(pid)
                continue
            self.workers_seen += 1
            self._running[pid] = (workload, now)

    def _observe(self, pid: int, workload: str | None, now: float) -> None:
        previous, since = self._running[pid]
        if workload == previous:
            return
        if previous is not None:
            self.spells.setdefault(previous, []).append((since, now))
        if workload == "":  # the process is gone or is no longer a worker
            del self._running[pid]
        else:
            self._running[pid] = (workload, now)


def _worker_workload(pid: int) -> str | None:
    """The task instance id a worker runs, None when it is idle, "" when ``pid`` is not a worker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            title = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
    if not title.startswith(WORKER_TITLE_PREFIX):
        return ""
    workload = title[len(WORKER_TITLE_PREFIX) :].strip()
    return None if workload == IDLE_TITLE else workload


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def execution_log_spans(log: str) -> list[float]:
    """Seconds from each execution's "Pre Execute" to the end of its "Post Execute" group.

    Airflow 3 writes a task's log as JSON events; lines the triggerer adds between two executions
    fall outside these spans. An unknown log format gives no spans rather than wrong ones.
    """
    try:
        events = json.loads(log)
    except ValueError:
        return []
    spans: list[float] = []
    begun: datetime | None = None
    in_post_execute = False
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or "timestamp" not in event:
            continue
        moment = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
        text = str(event.get("event", ""))
        if text.startswith("::group::Pre Execute"):
            begun, in_post_execute = moment, False
        elif text.startswith("::group::Post Execute"):
            in_post_execute = True
        elif text.startswith("::endgroup::") and in_post_execute and begun is not None:
            spans.append((moment - begun).total_seconds())
            begun, in_post_execute = None, False
    return spans


class WorkerSlotBench:
    """The emulator and a real Airflow with the benchmark's DAG; ``start()`` is the slow part.

    Starting is separate from measuring so that a caller can start Airflow ahead of time (the smoke
    test does, while other benchmarks run).
    """

    def __init__(self, scale: Scale = FULL) -> None:
        self.scale = scale
        self._scratch = tempfile.TemporaryDirectory(prefix="wavespeed-bench-airflow-")
        self._resources = contextlib.ExitStack()
        self.started_in = 0.0

    def start(self) -> None:
        from devstack.airflow_stack import LocalAirflow

        began = time.monotonic()
        root = Path(self._scratch.name)
        dags = root / "dags"
        dags.mkdir()
        (dags / f"{DAG_ID}.py").write_text(self.scale.dag_file())
        seconds = self.scale.prediction_seconds
        emulator = self._resources.enter_context(spawned_emulator(prediction_seconds=(seconds, seconds)))
        bundle = {"name": "wavespeed-bench", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
        self.airflow = LocalAirflow(
            home=root / "airflow",
            dags_folder=dags,
            extra_env={
                **connection_env(CONN_ID, emulator.base_url, emulator.api_key),
                # Only this folder: a caller's own bundle list (the test suite sets one) must not leak in.
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                    [{**bundle, "kwargs": {"path": str(dags)}}]
                ),
            },
        )
        self._resources.callback(self.airflow.stop)
        self.airflow.start()
        self.airflow.wait_for_dag(DAG_ID)
        self.started_in = time.monotonic() - began

    def measure(self) -> SectionResult:
        began = time.monotonic()
        # The LocalExecutor's workers are children of the scheduler process.
        with WorkerTitleWatcher(self.airflow.processes["scheduler"].pid) as watcher:
            run_id = self.airflow.trigger(DAG_ID)
            state = self.airflow.wait_for_run(DAG_ID, run_id, timeout=self.scale.run_timeout)
            instances = self.airflow.task_instances(DAG_ID, run_id)
            workers_freed = watcher.wait_until_idle({str(instance["id"]) for instance in instances}, timeout=30)
        tasks = {}
        for instance in instances:
            spells = sorted(watcher.spells.get(str(instance["id"]), []))
            try_number = max(1, int(instance["try_number"] or 1))
            log_spans = execution_log_spans(self.airflow.task_log(DAG_ID, run_id, instance["task_id"], try_number))
            tasks[instance["task_id"]] = {
                "state": instance["state"],
                "slot_spells": [[start, end] for start, end in spells],
                "slot_seconds": sum(end - start for start, end in spells),
                "log_spans_seconds": log_spans,
                # What each execution held its worker beyond its own log: start-up, reporting, waits.
                "beyond_log_seconds": [
                    end - start - span for (start, end), span in zip(spells, log_spans, strict=False)
                ],
                "off_worker_seconds": spells[-1][0] - spells[0][1] if len(spells) > 1 else 0.0,
            }
        if not workers_freed:
            state = f"{state}, but a worker still ran one of its tasks 30 s later"
        return self._section(state, tasks, watcher.workers_seen, time.monotonic() - began)

    def close(self) -> None:
        self._resources.close()
        self._scratch.cleanup()

    def __enter__(self) -> WorkerSlotBench:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _section(self, state: str, tasks: dict[str, dict[str, Any]], workers: int, wall: float) -> SectionResult:
        kinds = {kind: _summary(kind, tasks) for kind in (NOOP, DEFERRABLE, POKE)}
        noop, deferrable = kinds[NOOP], kinds[DEFERRABLE]
        table = Table(
            [
                "task",
                "copies",
                "worker executions each",
                "worker-slot time, median (vs no-op)",
                "range",
                "task-log span, median (vs no-op)",
                "beyond the log, per execution: median / max",
                "time deferred, off any worker",
            ]
        )
        for kind, summary in kinds.items():
            table.rows.append(
                [
                    LABELS[kind],
                    str(summary["copies"]),
                    "/".join(str(count) for count in summary["executions"]),
                    vs(summary["slot_seconds"], noop["slot_seconds"], "s"),
                    f"{fmt(summary['slot_min_seconds'], 's')} - {fmt(summary['slot_max_seconds'], 's')}",
                    vs(summary["log_span_seconds"], noop["log_span_seconds"], "s"),
                    f"{fmt(summary['beyond_log_median_seconds'], 's')} / {fmt(summary['beyond_log_max_seconds'], 's')}",
                    fmt(summary["off_worker_seconds"], "s", 1) if kind == DEFERRABLE else "",
                ]
            )
        extra = deferrable["slot_seconds"] - noop["slot_seconds"]
        succeeded = state == "success" and all(task["state"] == "success" for task in tasks.values())
        measured = succeeded and all(task["slot_spells"] for task in tasks.values())
        return SectionResult(
            key="worker_slot",
            title=f"5. Worker-slot time of a lipsync task on a {self.scale.prediction_seconds:g} s prediction",
            method=(
                "one DAG run of a real Airflow 3 (LocalExecutor, SQLite, scheduler + triggerer + dag-processor + "
                f"api-server on loopback) runs {self.scale.copies} deferrable lipsync tasks, {self.scale.copies} "
                "no-op tasks and one poke-mode lipsync side by side. Worker-slot time = the time a LocalExecutor "
                f"worker's process title names the task instance (`{WORKER_TITLE_PREFIX} <ti id>`, sampled every "
                "20 ms), summed over the task's executions; the task-log span is the first to the last line of "
                "each execution (Pre Execute to Post Execute), i.e. the task's own part of the slot; the rest is "
                "Airflow's (process start, reporting, and the supervisor's exit wait of up to 5 s). Medians over "
                "the copies, as ratios against the no-op tasks of the same run."
            ),
            table=table,
            targets=[
                Target(
                    "the deferrable task holds a worker at most 1 s longer than the no-op task",
                    f"{extra:+.2f} s (median {deferrable['slot_seconds']:.2f} s in "
                    f"{deferrable['executions'][0]} executions vs {noop['slot_seconds']:.2f} s)",
                    extra <= 1.0 if measured else None,
                    why="" if measured else f"run {state}, or no worker title was seen ({workers} workers found)",
                )
            ],
            figures={
                "run_state": state,
                "kinds": kinds,
                "tasks": tasks,
                "workers_seen": workers,
                "airflow_start_seconds": self.started_in,
                "prediction_seconds": self.scale.prediction_seconds,
            },
            wall_seconds=self.started_in + wall,
        )


def _summary(kind: str, tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Medians over the copies of one kind of task (their ids are ``<kind>_<n>``)."""
    copies = [task for task_id, task in sorted(tasks.items()) if task_id.rpartition("_")[0] == kind]
    slots = [task["slot_seconds"] for task in copies]
    beyond_log = [seconds for task in copies for seconds in task["beyond_log_seconds"]]
    return {
        "copies": len(copies),
        "executions": [len(task["slot_spells"]) for task in copies],
        "slot_seconds": median(slots),
        "slot_min_seconds": min(slots, default=math.nan),
        "slot_max_seconds": max(slots, default=math.nan),
        "log_span_seconds": median(sum(task["log_spans_seconds"]) for task in copies),
        "off_worker_seconds": median(task["off_worker_seconds"] for task in copies),
        "beyond_log_median_seconds": median(beyond_log),
        "beyond_log_max_seconds": max(beyond_log, default=math.nan),
    }


def run(scale: Scale = FULL) -> SectionResult:
    with WorkerSlotBench(scale) as bench:
        return bench.measure()
