"""A full WaveSpeed outage while a real Airflow waits for paid predictions: the run and its figures.

Used by the end-to-end outage tests (``tests/e2e/test_outages.py``) and the soak. A DAG run is
triggered, and once every task has submitted (a deferred task is in the triggerer, a worker-side
one is polling), the emulator goes down for ``seconds``: every request answered 503, or its
listening socket closed so connections are refused. The predictions finish at "WaveSpeed"
meanwhile; what is measured is whether every task rides the outage out on its first try, and how
soon after the outage's end each prediction's completion was read (the emulator records the first
read of a final status).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import requests

from wavespeed_emulator.outage import OutageMode, OutagePlan
from wavespeed_emulator.outcomes import SECONDS_TRIGGER

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from devstack.airflow_stack import LocalAirflow


@dataclass
class OutageRun:
    """What one DAG run through an outage did; see :func:`run_through_outage`."""

    mode: OutageMode
    seconds: float
    run_id: str = ""
    run_state: str = ""
    outage: dict[str, Any] = field(default_factory=dict)
    """The emulator's record of the outage: ``started_at``, ``ends_at`` (Unix seconds)."""
    states: dict[str, dict[int, str]] = field(default_factory=dict)
    """task id -> map index -> final state."""
    tries: dict[str, dict[int, int]] = field(default_factory=dict)
    request_ids: dict[str, dict[int, str]] = field(default_factory=dict)
    detection_seconds: dict[str, float] = field(default_factory=dict)
    """request id -> seconds from the outage's end to the first read of its final status."""
    faults_after_end: dict[str, int] = field(default_factory=dict)
    """request id -> faults (the soak's, beside the outage) that struck its reads after the outage's end."""
    failed_checks_logged: int = 0
    """Task logs (one per task instance) that logged a failed status check during the outage."""

    def noticed_late(self, max_poll_interval: float, allowance: float) -> dict[str, float]:
        """Completions read later than one ``max_poll_interval`` after the outage's end (plus ``allowance``).

        Each fault that struck a prediction's reads after the end costs its wait one more backoff
        step, itself never longer than ``max_poll_interval``, so each adds one to the bound.
        """
        return {
            request_id: round(delay, 1)
            for request_id, delay in self.detection_seconds.items()
            if delay > max_poll_interval * (1 + self.faults_after_end.get(request_id, 0)) + allowance
        }

    def summary(self) -> str:
        delays = sorted(self.detection_seconds.values())
        states = {task: _count(values.values()) for task, values in self.states.items()}
        return (
            f"{self.mode} outage of {self.seconds:.0f} s: run {self.run_state}, states {states}, "
            f"detection after the outage's end: "
            + (f"min {delays[0]:.1f} s, max {delays[-1]:.1f} s" if delays else "none measured")
        )


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def processing_through(outage_seconds: float) -> str:
    """A query for an input URL that keeps its prediction processing from its submit into the outage.

    The outage begins only once every task of the run has submitted, which takes a loaded machine
    tens of seconds; a prediction must still be processing then, and end before the outage does, so
    that the check after the outage is the one that reads its completion.
    """
    return f"{SECONDS_TRIGGER}={outage_seconds * 2 / 3:.0f}"


def run_through_outage(
    airflow: LocalAirflow,
    emulator: Any,
    dag_id: str,
    conf: Mapping[str, Any],
    expected: Mapping[str, int],
    *,
    mode: OutageMode,
    seconds: float,
    submitted_timeout: float = 900.0,
    run_timeout: float | None = None,
) -> OutageRun:
    """Trigger ``dag_id``, take WaveSpeed down once every task has submitted, and wait for the run's end.

    :param expected: task id -> how many mapped instances it has; all must have submitted (pushed
        their ``request_id``) and be waiting before the outage begins.
    :param seconds: the outage's length.
    """
    report = OutageRun(mode=mode, seconds=seconds)
    airflow.wait_for_dag(dag_id)
    report.run_id = airflow.trigger(dag_id, conf=dict(conf))
    _wait_until_all_wait(airflow, dag_id, report.run_id, expected, submitted_timeout)
    report.outage = emulator.begin_outage(OutagePlan(mode, seconds))
    report.run_state = _wait_for_run(airflow, dag_id, report.run_id, run_timeout or seconds + 900.0)
    _collect(airflow, emulator, dag_id, report, expected)
    return report


# SQLite under a busy Airflow sometimes answers an API read with 500 ("database is locked"), or late.
_API_ATTEMPTS = 10


def _retried(read: Callable[[], Any]) -> Any:
    """A read of Airflow's REST API, tried again while its database is busy."""
    for _ in range(_API_ATTEMPTS - 1):
        try:
            return read()
        except (RuntimeError, requests.RequestException):
            time.sleep(2.0)
    return read()


def _read(airflow: LocalAirflow, path: str, **params: Any) -> Any:
    return _retried(lambda: airflow.api("GET", path, params=params))


def _task_instances(airflow: LocalAirflow, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return list(_read(airflow, f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"])


def _submitted(airflow: LocalAirflow, dag_id: str, run_id: str) -> set[tuple[str, int]]:
    entries = _read(
        airflow,
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries",
        xcom_key="request_id",
        limit=1000,
    )["xcom_entries"]
    return {(str(entry["task_id"]), int(entry["map_index"])) for entry in entries}


def _wait_until_all_wait(
    airflow: LocalAirflow, dag_id: str, run_id: str, expected: Mapping[str, int], timeout: float
) -> None:
    """Until every expected task instance has submitted and is deferred (or polling on its worker)."""
    deadline = time.monotonic() + timeout
    wanted = {(task_id, index) for task_id, count in expected.items() for index in range(count)}
    while True:
        instances = _task_instances(airflow, dag_id, run_id)
        waiting = {
            (str(ti["task_id"]), int(ti["map_index"])) for ti in instances if ti["state"] in ("deferred", "running")
        }
        if wanted <= waiting and wanted <= _submitted(airflow, dag_id, run_id):
            return
        ended = {
            (str(ti["task_id"]), ti["map_index"], ti["state"])
            for ti in instances
            if (str(ti["task_id"]), int(ti["map_index"])) in wanted
            and ti["state"] in ("success", "failed", "upstream_failed", "skipped")
        }
        if ended:
            lasting = " (a prediction must last into the outage, see processing_through)"
            raise RuntimeError(
                f"tasks of {dag_id} ended before the outage began: {sorted(ended)}"
                + (lasting if any(state == "success" for *_, state in ended) else "")
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every task of {dag_id} submitted within {timeout:.0f} s: waiting {waiting}")
        time.sleep(1.0)


def _wait_for_run(airflow: LocalAirflow, dag_id: str, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = str(_read(airflow, f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
        if state in ("success", "failed"):
            return state
        time.sleep(2.0)
    return "timeout"


def _collect(airflow: LocalAirflow, emulator: Any, dag_id: str, report: OutageRun, expected: Mapping[str, int]) -> None:
    for ti in _task_instances(airflow, dag_id, report.run_id):
        task_id, index = str(ti["task_id"]), int(ti["map_index"])
        if task_id not in expected:
            continue
        report.states.setdefault(task_id, {})[index] = str(ti["state"])
        report.tries.setdefault(task_id, {})[index] = int(ti["try_number"])
        entry = _read(
            airflow,
            f"/dags/{dag_id}/dagRuns/{report.run_id}/taskInstances/{task_id}/xcomEntries/request_id",
            map_index=index,
        )
        report.request_ids.setdefault(task_id, {})[index] = str(entry["value"])
        log = _retried(partial(airflow.task_log, dag_id, report.run_id, task_id, try_number=1, map_index=index))
        report.failed_checks_logged += "Status check of WaveSpeed prediction" in log
    stats = emulator.stats()
    ends_at = float(report.outage["ends_at"])
    for ids in report.request_ids.values():
        for request_id in ids.values():
            seen = (stats["predictions"].get(request_id) or {}).get("first_final_read_at")
            if seen is not None:
                report.detection_seconds[request_id] = float(seen) - ends_at
                struck = stats["fault_times_by_prediction"].get(request_id, [])
                report.faults_after_end[request_id] = sum(1 for at in struck if ends_at <= at <= float(seen))
