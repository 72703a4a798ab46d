"""The fault-injection soak: many lipsync predictions through a real Airflow under faults.

A real Airflow 3 (:mod:`devstack.airflow_stack`, in its distributed topology by default: PostgreSQL,
CeleryExecutor with two workers, two triggerers; or the embedded one: SQLite, LocalExecutor, one
triggerer) runs ``tests/soak/dags/wavespeed_soak.py``: one mapped, deferrable ``LipsyncOperator``
per prediction, against the emulator in its own process injecting faults on every API route (10%
5xx, 5% 429 of which half carry Retry-After, 2% dropped connections, 1% malformed bodies, 3% slow
answers). Meanwhile, at evenly spaced milestones, the scale's events strike: a triggerer SIGKILLed
and restarted, a triggerer SIGKILLed for good (the other must take over its triggers), the
scheduler restarted. And the scale's strikes: one task's process SIGKILLed right after its submit,
once its request id is recorded; on Celery, then a whole worker SIGKILLed for good the same way,
with every task running on it.

On the submit route every fault strikes before the emulator accepts the request
(``before_accept_routes``): a fault after acceptance is, for any client, indistinguishable from one
before, and the provider then fails loudly rather than risk paying twice (tested on its own in
``tests/integration/test_retries_resume.py``), which "every prediction succeeds" cannot coexist
with. Every other route keeps faults after acceptance half the time. Since the outage DAG below
uses the same model at the same time, a lost submit answer leaves predictions in WaveSpeed's
history that no task of the main run claims, so the main DAG runs with
``uncertain_submit="resubmit"``; with faults only before acceptance, that never pays twice.

Meanwhile a full API outage (every request 503, three minutes in the full soak) strikes while a
second DAG's lipsync tasks with ``retries=0`` wait, and the main run's tasks with it
(:mod:`devstack.soak_outage`).

Each task's inputs are the emulator's own media URLs with a ``?take=<n>`` query of their own, so a
second submit by any task shows in the emulator's ``duplicate_submits`` counter.

``python -m devstack.soak`` runs the full soak (200 predictions); ``--short`` the version
``make test`` runs; ``--topology embedded`` the SQLite/LocalExecutor one; ``--runs 3`` repeats it.
It prints a report and exits non-zero when a requirement failed. At the end the whole run is
cleared and must pay for nothing again: no submit, no upload, no output touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy

from devstack.airflow_stack import (
    DISTRIBUTED,
    EMBEDDED,
    HA_SETTINGS,
    REPO,
    LocalAirflow,
    Topology,
    missing_services,
)
from devstack.clips import make_audio, make_video
from devstack.soak_outage import OUTPUT_ENV, OutagePhase, OutagePhasePlan
from devstack.uploads import upload
from wavespeed_emulator import EmulatorConfig, FaultConfig, WaveSpeedEmulator
from wavespeed_emulator.catalog import find_model
from wavespeed_emulator.routes import Route
from wavespeed_emulator.stats import input_key

LIPSYNC_MODEL = "sync/lipsync-1.9.0-beta"
DAG_ID = "wavespeed_soak"
TASK_ID = "lipsync"
DAGS = REPO / "tests" / "soak" / "dags"

SOAK_FAULTS = FaultConfig(
    rate_500=0.04,
    rate_502=0.03,
    rate_503=0.03,
    rate_429=0.025,
    rate_429_retry_after=0.025,
    retry_after_seconds=1,
    rate_drop=0.02,
    rate_malformed=0.01,
    rate_slow=0.03,
    slow_seconds=2.0,
    after_accept_rate=0.5,
    before_accept_routes=(Route.SUBMIT.value,),
)


class Event(Enum):
    """What strikes the stack at a milestone of the run."""

    TRIGGERER_RESTART = "triggerer SIGKILLed and restarted"
    TRIGGERER_LOSS = "triggerer SIGKILLed, never restarted"
    SCHEDULER_RESTART = "scheduler restarted"


class Strike(Enum):
    """What is SIGKILLed right after a task's submit, while the task still runs."""

    TASK_PROCESS = "the task's own process"
    CELERY_WORKER = "the Celery worker running it, with every task on it, never restarted"


FULL_OUTAGE = OutagePhasePlan(predictions=20, seconds=180.0)


@dataclass(frozen=True)
class Scale:
    predictions: int
    events: tuple[Event, ...]
    strikes: tuple[Strike, ...] = (Strike.TASK_PROCESS,)
    topology: Topology = DISTRIBUTED
    prediction_seconds: tuple[float, float] = (5.0, 15.0)
    parallelism: int = 6
    run_timeout: float = 1800.0
    outage: OutagePhasePlan = FULL_OUTAGE


DISTRIBUTED_FULL = Scale(
    predictions=200,
    events=(
        Event.TRIGGERER_RESTART,
        Event.TRIGGERER_LOSS,
        Event.SCHEDULER_RESTART,
        Event.TRIGGERER_RESTART,
    ),
    strikes=(Strike.TASK_PROCESS, Strike.CELERY_WORKER),
)
DISTRIBUTED_SHORT = Scale(
    predictions=16,
    events=(Event.TRIGGERER_LOSS, Event.SCHEDULER_RESTART),
    strikes=(Strike.TASK_PROCESS, Strike.CELERY_WORKER),
    run_timeout=900.0,
    outage=OutagePhasePlan(predictions=4, seconds=30.0),
)
EMBEDDED_FULL = Scale(predictions=200, events=(Event.TRIGGERER_RESTART, Event.TRIGGERER_RESTART), topology=EMBEDDED)
EMBEDDED_SHORT = Scale(
    predictions=12,
    events=(Event.TRIGGERER_RESTART,),
    topology=EMBEDDED,
    run_timeout=900.0,
    outage=OutagePhasePlan(predictions=4, seconds=30.0),
)
SCALES = {
    ("distributed", False): DISTRIBUTED_FULL,
    ("distributed", True): DISTRIBUTED_SHORT,
    ("embedded", False): EMBEDDED_FULL,
    ("embedded", True): EMBEDDED_SHORT,
}


@dataclass
class TriggererKill:
    at_seconds: float
    component: str
    restarted: bool
    waits: dict[int, float]
    """trigger id -> end_time of every trigger the killed triggerer held."""
    dead_triggerer_id: Any = None
    resumed: dict[int, float] = field(default_factory=dict)
    """trigger id -> seconds after the kill at which another triggerer held it (or it had fired)."""
    end_time_changed: set[int] = field(default_factory=set)

    @property
    def pickup_seconds(self) -> float | None:
        """How long until the last of its triggers was held again."""
        return max(self.resumed.values()) if self.resumed else None


@dataclass
class WorkerKill:
    strike: Strike
    map_index: int = -1
    request_id: str | None = None
    killed_pids: list[int] = field(default_factory=list)
    killed_in_try: int = 0
    tries: int = 0
    resumed_in_log: bool = False
    named_in_killed_log: bool = False
    """The killed try's log names the request id that may still run at WaveSpeed."""
    component: str | None = None
    """The Celery worker killed with it (``Strike.CELERY_WORKER``)."""
    also_running: dict[int, int] = field(default_factory=dict)
    """map index -> try of every other task that was running on that worker."""
    detected_after: float | None = None
    """Seconds from the kill until Airflow stopped counting the task as running."""


@dataclass
class Report:
    scale: Scale
    wall_seconds: float = 0.0
    run_state: str = ""
    succeeded: int = 0
    states: dict[str, int] = field(default_factory=dict)
    retried_tasks: int = 0
    submits: int = 0
    duplicate_submits: int = 0
    predictions_created: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    faults_after_accept_by_route: dict[str, int] = field(default_factory=dict)
    submit_faults: dict[str, int] = field(default_factory=dict)
    triggerer_kills: list[TriggererKill] = field(default_factory=list)
    scheduler_restarts: int = 0
    worker_kills: list[WorkerKill] = field(default_factory=list)
    outputs: int = 0
    lost_outputs: list[str] = field(default_factory=list)
    partial_outputs: list[str] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)
    outage_problems: list[str] = field(default_factory=list)
    outage_rows: list[tuple[str, str]] = field(default_factory=list)
    rerun_state: str = ""
    rerun_submits: int = -1
    rerun_uploads: int = -1
    rerun_outputs_changed: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """Every requirement of issue 6 (and of the outage phase) that this run did not meet."""
        n = self.scale.predictions
        problems = list(self.outage_problems)
        if self.run_state != "success" or self.succeeded != n:
            problems.append(f"{self.succeeded}/{n} predictions succeeded (run {self.run_state}): {self.states}")
        if self.duplicate_submits or self.submits != n or self.predictions_created != n:
            problems.append(
                f"{self.submits} submits, {self.duplicate_submits} duplicates, {self.predictions_created} "
                f"predictions for {n} tasks"
            )
        if self.lost_outputs or self.partial_outputs or self.stray_files or self.outputs != n:
            problems.append(
                f"outputs: {self.outputs} of {n}; lost {self.lost_outputs}, partial {self.partial_outputs}, "
                f"stray {self.stray_files}"
            )
        planned_kills = sum(1 for event in self.scale.events if event is not Event.SCHEDULER_RESTART)
        if len(self.triggerer_kills) != planned_kills:
            problems.append(f"{len(self.triggerer_kills)} triggerer kills, {planned_kills} planned")
        if self.scheduler_restarts != self.scale.events.count(Event.SCHEDULER_RESTART):
            problems.append(f"{self.scheduler_restarts} scheduler restarts, fewer than planned")
        for number, kill in enumerate(self.triggerer_kills, 1):
            if not kill.waits:
                problems.append(f"triggerer kill {number} found no wait in progress")
            if set(kill.waits) - set(kill.resumed):
                problems.append(
                    f"triggerer kill {number}: waits {sorted(set(kill.waits) - set(kill.resumed))} never resumed"
                )
            if kill.end_time_changed:
                problems.append(f"triggerer kill {number}: end_time changed for {sorted(kill.end_time_changed)}")
        if [kill.strike for kill in self.worker_kills if kill.killed_pids] != list(self.scale.strikes):
            problems.append(f"planned strikes {[s.name for s in self.scale.strikes]}, done {self._strikes_done()}")
        for worker in self.worker_kills:
            if not worker.killed_pids:
                continue
            if worker.tries <= worker.killed_in_try or not worker.resumed_in_log:
                problems.append(
                    f"{worker.strike.value} killed in try {worker.killed_in_try} (map index {worker.map_index}): "
                    f"{worker.tries} tries, and no later try logged resuming {worker.request_id}"
                )
            elif worker.strike is Strike.TASK_PROCESS and not worker.named_in_killed_log:
                problems.append(f"the killed try's log does not name {worker.request_id}")
        if self.rerun_state != "success" or self.rerun_submits or self.rerun_uploads or self.rerun_outputs_changed:
            problems.append(
                f"the re-run of the whole run (a clear) ended {self.rerun_state or 'never'} with "
                f"{self.rerun_submits} new submits, {self.rerun_uploads} new uploads, outputs changed "
                f"{self.rerun_outputs_changed[:5]}"
            )
        if self.faults_after_accept_by_route.get(Route.SUBMIT.value):
            problems.append("a fault struck a submit after acceptance, which the soak's set-up excludes")
        return problems

    def _strikes_done(self) -> list[str]:
        return [kill.strike.name for kill in self.worker_kills if kill.killed_pids]

    def table(self) -> str:
        n = self.scale.predictions
        kills = self.triggerer_kills
        rows = [
            ("topology", self.scale.topology.name),
            ("predictions (mapped tasks)", str(n)),
            ("succeeded", f"{self.succeeded}/{n} (run {self.run_state})"),
            ("tasks that needed a retry", str(self.retried_tasks)),
            ("submits / duplicate submits", f"{self.submits} / {self.duplicate_submits}"),
            ("predictions created at the emulator", str(self.predictions_created)),
            ("faults injected", f"{sum(self.faults.values())}: " + _counts(self.faults)),
            ("  on submits (all before accept)", _counts(self.submit_faults) or "none"),
            ("  after accept, by route", _counts(self.faults_after_accept_by_route) or "none"),
            (
                "triggerer SIGKILLs",
                ", ".join(f"{kill.component} ({'restarted' if kill.restarted else 'for good'})" for kill in kills)
                or "none",
            ),
            (
                "  waits the killed one held",
                ", ".join(f"{len(kill.waits)} at {kill.at_seconds:.0f} s" for kill in kills) or "none",
            ),
            (
                "  held again by a live triggerer",
                ", ".join(
                    f"{len(set(kill.resumed) & set(kill.waits))}/{len(kill.waits)}"
                    + (f" within {kill.pickup_seconds:.0f} s" if kill.pickup_seconds is not None else "")
                    for kill in kills
                )
                or "none",
            ),
            ("  end_time changed", str(sum(len(kill.end_time_changed) for kill in kills))),
            ("scheduler restarts", str(self.scheduler_restarts)),
            *((f"SIGKILL of {worker.strike.value}", _worker_kill_line(worker)) for worker in self.worker_kills),
            ("outputs at output_path", f"{self.outputs}/{n}"),
            (
                "lost / partial outputs, stray files",
                f"{len(self.lost_outputs)} / {len(self.partial_outputs)}, {len(self.stray_files)}",
            ),
            *self.outage_rows,
            (
                "re-run (the whole run cleared)",
                f"{self.rerun_state}: {self.rerun_submits} new submits, {self.rerun_uploads} new uploads, "
                f"{len(self.rerun_outputs_changed)} outputs changed",
            ),
            ("wall time", f"{self.wall_seconds / 60:.1f} min"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        verdict = self.failures()
        lines.append("PASS" if not verdict else "FAIL: " + "; ".join(verdict))
        return "\n".join(lines)


def _worker_kill_line(worker: WorkerKill) -> str:
    if not worker.killed_pids:
        return "not done"
    line = (
        f"map index {worker.map_index}, try {worker.killed_in_try} ({worker.request_id}): "
        f"{'a retry resumed it' if worker.resumed_in_log else 'NOT resumed'}, {worker.tries} tries"
    )
    if worker.strike is Strike.TASK_PROCESS:
        return line + f", killed try's log {'names' if worker.named_in_killed_log else 'does NOT name'} it"
    detected = f"{worker.detected_after:.0f} s" if worker.detected_after is not None else "never"
    return (
        f"{worker.component}, {len(worker.also_running)} more tasks on it; {line}; "
        f"Airflow failed it into a retry after {detected}"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()) if count)


# -- reading Airflow's metadata database ------------------------------------------------------------


class MetadataReader:
    """Read-only queries on the stack's metadata database (the REST API pages mapped tasks by 50)."""

    def __init__(self, airflow: LocalAirflow, dag_id: str = DAG_ID, task_id: str = TASK_ID) -> None:
        self._dag_id, self._task_id = dag_id, task_id
        url = airflow.database_url
        if url.startswith("sqlite:///"):
            # Read-only, so that a reader never holds the write lock the components wait for.
            url = f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
            self._engine = sqlalchemy.create_engine(url, connect_args={"timeout": 30}, poolclass=sqlalchemy.NullPool)
        else:
            self._engine = sqlalchemy.create_engine(url, pool_size=2, pool_pre_ping=True)
        fernet_key = json.loads((airflow.home / "stack-secrets.json").read_text())["fernet"]
        from cryptography.fernet import Fernet

        self._fernet = Fernet(fernet_key.encode())

    def close(self) -> None:
        self._engine.dispose()

    def _query(self, sql: str, **params: Any) -> list[Any]:
        with self._engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text(sql), params).fetchall())

    def task_instances(self, run_id: str) -> dict[int, dict[str, Any]]:
        rows = self._query(
            "SELECT map_index, id, state, try_number, trigger_id, hostname FROM task_instance "
            "WHERE dag_id = :dag_id AND run_id = :run_id AND task_id = :task_id",
            dag_id=self._dag_id,
            run_id=run_id,
            task_id=self._task_id,
        )
        return {
            row[0]: {
                # SQLite keeps the id without dashes, PostgreSQL as a UUID.
                "id": str(uuid.UUID(str(row[1]))),
                "state": row[2],
                "try_number": row[3],
                "trigger_id": row[4],
                "hostname": row[5],
            }
            for row in rows
            if row[0] >= 0
        }

    def has_request_id(self, run_id: str, map_index: int) -> bool:
        """Whether the task pushed its ``request_id``: the submit answered and the id is recorded."""
        return bool(
            self._query(
                "SELECT 1 FROM xcom WHERE dag_id = :dag_id AND run_id = :run_id AND task_id = :task_id "
                "AND map_index = :map_index AND key = 'request_id'",
                dag_id=self._dag_id,
                run_id=run_id,
                task_id=self._task_id,
                map_index=map_index,
            )
        )

    def triggers(self) -> dict[int, dict[str, Any]]:
        """Every trigger row: id -> triggerer id and the decrypted kwargs' end_time."""
        triggers = {}
        for trigger_id, triggerer_id, encrypted in self._query("SELECT id, triggerer_id, kwargs FROM trigger"):
            plain = encrypted if encrypted.startswith("{") else self._fernet.decrypt(encrypted.encode()).decode()
            kwargs = json.loads(plain)
            triggers[trigger_id] = {"triggerer_id": triggerer_id, "end_time": _end_time(kwargs)}
        return triggers

    def triggerer_hostnames(self) -> dict[int, str]:
        """Triggerer job id -> hostname (in the distributed topology, the component's name)."""
        rows = self._query("SELECT id, hostname FROM job WHERE job_type = 'TriggererJob'")
        return {row[0]: row[1] for row in rows}


def _end_time(serialized: Any) -> float | None:
    """``end_time`` from Airflow's serialized kwargs, however deep its serde wrapping put it."""
    if isinstance(serialized, dict):
        if "end_time" in serialized:
            value = serialized["end_time"]
            while isinstance(value, dict):
                value = value.get("__var", value.get("__data__"))
            return float(value)
        for value in serialized.values():
            found = _end_time(value)
            if found is not None:
                return found
    return None


# -- killing a task right after its submit ----------------------------------------------------------


def task_process_pids(ti_id: str) -> list[int]:
    """The processes running a task instance's own code (never the worker that supervises it).

    The task's process titles itself ``airflow worker -- <ti id>``. A LocalExecutor worker titles
    itself ``airflow worker -- LocalExecutor: <ti id>`` while it supervises the workload, and the
    task's process it forks inherits that title until it sets its own: the supervisor is the one
    whose parent does not carry the id. Under Celery the supervisor is a pool process titled by
    Celery, so every process carrying the id is the task's.
    """
    titled: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if title.startswith("airflow worker --") and ti_id in title:
            titled[int(entry.name)] = (title, parent)
    return [pid for pid, (title, parent) in titled.items() if parent in titled or "LocalExecutor:" not in title]


class WorkerKiller(threading.Thread):
    """Strikes, one after the other, tasks right after their submit, before they deferred.

    The moment a candidate's ``request_id`` XCom appears, its processes (for
    ``Strike.CELERY_WORKER``, the whole worker running it) are frozen (SIGSTOP) and the task
    instance's state read: still ``running``, they are killed; already ``deferred`` (the window is a
    few hundred milliseconds), they are let go and the next candidate, one that has not started yet,
    is watched instead.
    """

    def __init__(
        self,
        airflow: LocalAirflow,
        emulator: Any,
        reader: MetadataReader,
        run_id: str,
        candidates: list[tuple[int, str]],
        strikes: tuple[Strike, ...],
    ) -> None:
        super().__init__(name="soak-worker-killer", daemon=True)
        self._airflow, self._emulator, self._reader, self._run_id = airflow, emulator, reader, run_id
        self._candidates, self._strikes = candidates, strikes
        self.kills: list[WorkerKill] = []
        self.misses: list[str] = []
        self.stop = threading.Event()
        self._killed_at = 0.0

    def run(self) -> None:
        candidates = iter(self._candidates)
        for strike in self._strikes:
            kill = WorkerKill(strike=strike)
            self.kills.append(kill)
            for map_index, key in candidates:
                try:
                    if self.stop.is_set() or self._watch(kill, map_index, key):
                        break
                # A busy database or a vanished process moves on to the next candidate; the report names it.
                except Exception as error:  # noqa: BLE001
                    self.misses.append(f"{map_index}: {error!r}")
            if kill.killed_pids and strike is Strike.CELERY_WORKER:
                self._wait_for_detection(kill)

    def _watch(self, kill: WorkerKill, map_index: int, key: str) -> bool:
        """True when it killed ``map_index`` (or was stopped); False to move to the next candidate."""
        instance: dict[str, Any] = {}
        while not self.stop.is_set() and not instance.get("id"):
            if key in self._emulator.stats()["submits_by_input"]:
                self.misses.append(f"{map_index}: submitted before its process was seen")
                return False
            instance = self._reader.task_instances(self._run_id).get(map_index, {})
            time.sleep(0.2)
        pids: list[int] = []
        while not self.stop.is_set():
            if not pids or not all(Path(f"/proc/{pid}").exists() for pid in pids):
                pids = self._targets(kill.strike, map_index, str(instance["id"]))
            # Not the emulator's submit counter: a kill between the submit's acceptance and the record
            # of its id leaves only the uncertain-submit record, whose retry reconciles rather than resume
            # (see airflow_provider_wavespeed.resume); this soak checks the resuming kind.
            if not self._reader.has_request_id(self._run_id, map_index):
                # Looking for the processes reads all of /proc: while they have not started (a task
                # takes seconds to start), look less often, or this thread starves the rest.
                time.sleep(0.005 if pids else 0.1)
                continue
            if not pids:
                self.misses.append(f"{map_index}: its process had ended when the submit was seen")
                return False
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            instances = self._reader.task_instances(self._run_id)
            instance = instances[map_index]
            if instance["state"] != "running":
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                self.misses.append(f"{map_index}: already {instance['state']} when frozen")
                return False
            if kill.strike is Strike.CELERY_WORKER:
                kill.component = str(instance["hostname"])
                kill.also_running = {
                    index: int(ti["try_number"])
                    for index, ti in instances.items()
                    if ti["hostname"] == kill.component and ti["state"] == "running" and index != map_index
                }
                self._airflow.kill(kill.component)
                kill.killed_pids = pids
            else:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        kill.killed_pids.append(pid)
            kill.map_index = map_index
            kill.killed_in_try = int(instance["try_number"])
            kill.detected_after = None
            self._killed_at = time.monotonic()
            return True
        return True

    def _targets(self, strike: Strike, map_index: int, ti_id: str) -> list[int]:
        if strike is Strike.TASK_PROCESS:
            return task_process_pids(ti_id)
        # The worker's whole process group: Celery's main process, its pool, the task's supervisor.
        hostname = self._reader.task_instances(self._run_id)[map_index]["hostname"]
        process = self._airflow.processes.get(str(hostname))
        if process is None:
            return []
        return [
            int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and _pgid(entry) == process.pid
        ]

    def _wait_for_detection(self, kill: WorkerKill) -> None:
        """Time how long Airflow takes to stop counting the dead worker's task as running."""
        while not self.stop.is_set():
            instance = self._reader.task_instances(self._run_id)[kill.map_index]
            if instance["state"] != "running" or int(instance["try_number"]) > kill.killed_in_try:
                kill.detected_after = time.monotonic() - self._killed_at
                return
            time.sleep(1.0)


def _pgid(entry: Path) -> int | None:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


# -- the run ----------------------------------------------------------------------------------------


def run_soak(scale: Scale, workdir: Path, *, seed: int = 6) -> Report:
    report = Report(scale=scale)
    media, output, emulator_data = workdir / "media", workdir / "output", workdir / "emulator"
    outage_output = workdir / "outage-output"
    output.mkdir(parents=True)
    make_video(media / "face.mp4", 1.0, width=160, height=120, fps=10)
    make_audio(media / "voice.wav", 1.0)
    config = EmulatorConfig(
        api_key=f"soak-{os.urandom(12).hex()}",
        host="127.0.0.1",
        data_dir=emulator_data,
        queue_seconds=0.5,
        prediction_seconds=scale.prediction_seconds,
        seed=seed,
    )
    with WaveSpeedEmulator.spawn(config) as emulator:
        # Uploaded once, before any fault is on: every task then passes the URL (with a query of its own).
        video_url, audio_url = upload(emulator, media / "face.mp4"), upload(emulator, media / "voice.wav")
        pairs = [{"video": f"{video_url}?take={n}", "audio": f"{audio_url}?take={n}"} for n in range(scale.predictions)]
        model = find_model(LIPSYNC_MODEL)
        keys = [input_key(model.path, model.validate(pair)) for pair in pairs]
        airflow = LocalAirflow(
            home=workdir / "airflow-home",
            dags_folder=DAGS,
            topology=scale.topology,
            extra_env={
                "WAVESPEED_SOAK_OUTPUT": f"{output}/",
                OUTPUT_ENV: f"{outage_output}/",
                "AIRFLOW__CORE__PARALLELISM": str(scale.parallelism),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": HA_SETTINGS[
                    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"
                ],
            },
        )
        try:
            airflow.start()
            airflow.create_connection(
                {
                    "connection_id": "wavespeed_default",
                    "conn_type": "wavespeed",
                    "host": emulator.base_url,
                    "password": emulator.api_key,
                }
            )
            airflow.wait_for_dag(DAG_ID)
            emulator.set_faults(SOAK_FAULTS)
            reader = MetadataReader(airflow)
            started = time.monotonic()
            run_id = airflow.trigger(DAG_ID, conf={"pairs": pairs})
            outage = OutagePhase(airflow, emulator, scale.outage, (video_url, audio_url))
            outage.start()
            # In the order they start, from a third in: on a miss, the next one's submit is still to come.
            candidates = [(n, keys[n]) for n in range(scale.predictions // 3, scale.predictions)]
            killer = WorkerKiller(airflow, emulator, reader, run_id, candidates, scale.strikes)
            killer.start()
            report.run_state = _drive(airflow, reader, run_id, scale, report, started)
            killer.stop.set()
            killer.join()
            outage.join(timeout=scale.outage.seconds + 1200.0)
            report.wall_seconds = time.monotonic() - started
            report.worker_kills = killer.kills
            print(f"  worker-kill candidates missed before the hits: {killer.misses[:10]}", flush=True)
            # The main run's figures are its own: the outage DAG's predictions are counted by the phase.
            outage_ids = set((outage.result.request_ids.get("lipsync", {}) if outage.result else {}).values())
            _collect(airflow, reader, emulator, run_id, report, emulator_data, output, others=outage_ids)
            stats = emulator.stats()
            report.outage_problems, report.outage_rows = outage.failures(stats, outage_output), outage.rows()
            report.submits -= outage.submits(stats)
            report.predictions_created -= len(outage_ids & set(stats["predictions"]))
            _rerun(airflow, emulator, run_id, scale, report, output)
            reader.close()
        finally:
            airflow.stop()
    return report


def _drive(
    airflow: LocalAirflow, reader: MetadataReader, run_id: str, scale: Scale, report: Report, started: float
) -> str:
    """Wait for the run to end, striking the stack with the scale's events as it passes its milestones."""
    n_events = len(scale.events)
    due = [(scale.predictions * (k + 1) // (n_events + 1), event) for k, event in enumerate(scale.events)]
    deadline = started + scale.run_timeout
    while time.monotonic() < deadline:
        state = airflow.run_state(DAG_ID, run_id)
        instances = reader.task_instances(run_id)
        triggers = reader.triggers()
        done = sum(1 for ti in instances.values() if ti["state"] == "success")
        for kill in report.triggerer_kills:
            since = time.monotonic() - started - kill.at_seconds
            for trigger_id in set(kill.waits) - set(kill.resumed):
                if trigger_id not in triggers:
                    kill.resumed[trigger_id] = since  # fired, so a live triggerer ran it to the end
                elif triggers[trigger_id]["triggerer_id"] not in (None, kill.dead_triggerer_id):
                    kill.resumed[trigger_id] = since
                    if triggers[trigger_id]["end_time"] != kill.waits[trigger_id]:
                        kill.end_time_changed.add(trigger_id)
        if state in ("success", "failed"):
            return state
        deferred = [ti["trigger_id"] for ti in instances.values() if ti["state"] == "deferred" and ti["trigger_id"]]
        if due and done + len(deferred) >= due[0][0]:
            event = due[0][1]
            if event is Event.SCHEDULER_RESTART:
                due.pop(0)
                airflow.restart("scheduler")
                report.scheduler_restarts += 1
                print(f"  scheduler restarted at {time.monotonic() - started:.0f} s", flush=True)
            elif len(deferred) >= min(3, scale.predictions // 4):
                struck = _kill_triggerer(airflow, reader, triggers, deferred, event is Event.TRIGGERER_RESTART)
                if struck is not None:
                    due.pop(0)
                    struck.at_seconds = time.monotonic() - started
                    report.triggerer_kills.append(struck)
                    print(
                        f"  {struck.component} SIGKILLed at {struck.at_seconds:.0f} s holding {len(struck.waits)} waits"
                        f" ({'restarted' if struck.restarted else 'for good'})",
                        flush=True,
                    )
        time.sleep(1.0)
    return "timeout"


def _kill_triggerer(
    airflow: LocalAirflow,
    reader: MetadataReader,
    triggers: dict[int, dict[str, Any]],
    deferred: list[int],
    restart: bool,
) -> TriggererKill | None:
    """SIGKILL the live triggerer holding the most waits (and start it again when ``restart``)."""
    alive = {trigger_id: triggers[trigger_id] for trigger_id in deferred if trigger_id in triggers}
    hostnames = reader.triggerer_hostnames()
    live = [name for name in airflow.components if name.startswith("triggerer") and name in airflow.processes]
    holders = Counter(
        row["triggerer_id"]
        for row in alive.values()
        if row["triggerer_id"] is not None and (len(live) == 1 or hostnames.get(row["triggerer_id"]) in live)
    ).most_common(1)
    if not holders:
        return None
    holder = holders[0][0]
    component = live[0] if len(live) == 1 else hostnames[holder]
    if not restart and len(live) == 1:
        raise RuntimeError(f"the soak would kill {component}, the last triggerer, for good")
    kill = TriggererKill(
        at_seconds=0.0,
        component=component,
        restarted=restart,
        waits={trigger_id: row["end_time"] for trigger_id, row in alive.items() if row["triggerer_id"] == holder},
        dead_triggerer_id=holder,
    )
    if restart:
        airflow.restart(component, signal.SIGKILL)
    else:
        airflow.kill(component)
    return kill


def _collect(
    airflow: LocalAirflow,
    reader: MetadataReader,
    emulator: Any,
    run_id: str,
    report: Report,
    emulator_data: Path,
    output: Path,
    others: set[str],
) -> None:
    instances = reader.task_instances(run_id)
    report.states = dict(Counter(str(ti["state"]) for ti in instances.values()))
    report.succeeded = report.states.get("success", 0)
    report.retried_tasks = sum(1 for ti in instances.values() if ti["try_number"] > 1)
    stats = emulator.stats()
    report.submits = stats["submits"]
    report.duplicate_submits = stats["duplicate_submits"]
    report.predictions_created = len(stats["predictions"])
    report.faults = stats["faults"]
    report.faults_after_accept_by_route = stats["faults_after_accept_by_route"]
    report.submit_faults = stats["faults_by_route"].get(Route.SUBMIT.value, {})
    for kill in report.worker_kills:
        if kill.killed_pids:
            _check_resumed(airflow, instances, run_id, kill)
    expected = {
        prediction_id: next((emulator_data / "media" / "outputs" / prediction_id).glob("*"), None)
        for prediction_id, prediction in stats["predictions"].items()
        if prediction["status"] == "completed" and prediction_id not in others
    }
    # Each output's provenance record and the directory's index sit beside the outputs.
    present = {path.name: path for path in output.iterdir() if not path.name.endswith(".wavespeed.json")}
    present.pop(".wavespeed", None)
    report.outputs = sum(1 for prediction_id in expected if f"{prediction_id}.mp4" in present)
    for prediction_id, source in expected.items():
        stored = present.get(f"{prediction_id}.mp4")
        if stored is None:
            report.lost_outputs.append(prediction_id)
        elif source is None or stored.stat().st_size != source.stat().st_size:
            report.partial_outputs.append(prediction_id)
    report.stray_files = sorted(set(present) - {f"{prediction_id}.mp4" for prediction_id in expected})


def _rerun(airflow: LocalAirflow, emulator: Any, run_id: str, scale: Scale, report: Report, output: Path) -> None:
    """Clear the whole finished run: every output is stored from the same inputs, so nothing is paid again."""
    before = emulator.stats()["requests"], emulator.stats()["submits"]
    stored = {path.name: path.stat().st_mtime_ns for path in output.iterdir()}
    airflow.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True},
    )
    report.rerun_state = airflow.wait_for_run(DAG_ID, run_id, timeout=scale.run_timeout)
    requests_after, submits_after = emulator.stats()["requests"], emulator.stats()["submits"]
    report.rerun_submits = submits_after - before[1]
    report.rerun_uploads = sum(
        requests_after.get(route, 0) - before[0].get(route, 0) for route in (Route.UPLOAD, Route.UPLOAD_TICKET)
    )
    report.rerun_outputs_changed = sorted(
        name
        for name, mtime in stored.items()
        if not (output / name).exists() or (output / name).stat().st_mtime_ns != mtime
    )


def _check_resumed(airflow: LocalAirflow, instances: dict[int, dict[str, Any]], run_id: str, kill: WorkerKill) -> None:
    """Whether a later try of the killed task logged resuming its prediction (and the killed one named it)."""
    kill.tries = int(instances.get(kill.map_index, {}).get("try_number") or 0)
    with contextlib.suppress(RuntimeError):
        kill.request_id = airflow.api(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/request_id",
            params={"map_index": kill.map_index},
        )["value"]
    if not (kill.request_id and kill.killed_in_try):
        return
    # A SIGKILLed worker's try may have no log the API can serve: its log lived with the worker.
    with contextlib.suppress(RuntimeError):
        killed_log = airflow.task_log(DAG_ID, run_id, TASK_ID, try_number=kill.killed_in_try, map_index=kill.map_index)
        kill.named_in_killed_log = f"Submitted WaveSpeed prediction {kill.request_id}" in killed_log
    kill.resumed_in_log = any(
        f"Resuming WaveSpeed prediction {kill.request_id}"
        in airflow.task_log(DAG_ID, run_id, TASK_ID, try_number=try_number, map_index=kill.map_index)
        for try_number in range(kill.killed_in_try + 1, kill.tries + 1)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the short version make test runs")
    parser.add_argument(
        "--topology",
        choices=("distributed", "embedded"),
        default="distributed",
        help="distributed: PostgreSQL, Celery, two triggerers (needs PostgreSQL and Redis on 127.0.0.1); "
        "embedded: SQLite, LocalExecutor, one triggerer",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat; stops at the first failure")
    parser.add_argument("--predictions", type=int, help="override the number of predictions")
    parser.add_argument("--keep", type=Path, help="keep each run's files (Airflow's logs too) in KEEP/run-<n>")
    args = parser.parse_args(argv)
    scale = SCALES[args.topology, args.short]
    if scale.topology is DISTRIBUTED and (missing := missing_services()):
        parser.error(missing)
    if args.predictions:
        scale = Scale(**{**scale.__dict__, "predictions": args.predictions})
    for number in range(1, args.runs + 1):
        print(f"== soak run {number}/{args.runs}: {scale.predictions} predictions, {scale.topology.name}", flush=True)
        if args.keep:
            report = run_soak(scale, args.keep / f"run-{number}", seed=6 + number)
        else:
            with tempfile.TemporaryDirectory(prefix="wavespeed-soak-") as workdir:
                report = run_soak(scale, Path(workdir), seed=6 + number)
        print(report.table(), flush=True)
        if report.failures():
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
