"""The dubbing example's budget in a real Airflow 3.1+: a person approves or rejects the spend.

The run is triggered over budget with ``approve_over_budget``; ``approve_spend`` (the standard
provider's ``ApprovalOperator``) waits for an answer, given through Airflow's REST API as the
Required Actions page gives it. Approve: the dubs are submitted and paid; Reject: they are skipped
and nothing is submitted.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from devstack.airflow_stack import LocalAirflow
from tests.e2e.conftest import DUBBING_DATE, requires_api_server

# make test-long, not make test: each run waits on a person's answer through Airflow's scheduler.
pytestmark = [pytest.mark.e2e, pytest.mark.long_running, requires_api_server]

DAG_ID = "example_dubbing_pipeline"
WAITING_FOR_A_PERSON = {"awaiting_input", "deferred"}
"""Airflow 3.3 parks a human-in-the-loop task in awaiting_input; 3.1 and 3.2 defer it."""


def states(airflow: LocalAirflow, run_id: str) -> dict[tuple[str, int], str]:
    return {(ti["task_id"], ti["map_index"]): str(ti["state"]) for ti in airflow.task_instances(DAG_ID, run_id)}


def scheduler_has_seen_the_pause(airflow: LocalAirflow, run_id: str) -> bool:
    """Whether the scheduler has processed the executor's report that the pausing try exited."""
    finished = f"TaskInstance Finished: dag_id={DAG_ID}, task_id=approve_spend, run_id={run_id},"
    return finished in airflow.component_log("scheduler")


def wait_for_the_question(airflow: LocalAirflow, run_id: str, timeout: float = 180.0) -> None:
    """Wait until the question is asked and Airflow is done parking the task that asks it.

    An answer given before the scheduler has processed the pausing try's exit (up to ~5 s after
    the task shows as waiting, the supervisor's exit wait) resumes the task under the same
    TaskInstanceKey, and Airflow 3.3.2's scheduler then fails the resumed try as a "state
    mismatch". The example's retry asks again in that case; these tests check the answer itself.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = states(airflow, run_id).get(("approve_spend", -1)) in WAITING_FOR_A_PERSON
        if waiting and scheduler_has_seen_the_pause(airflow, run_id):
            return
        if airflow.run_state(DAG_ID, run_id) in ("success", "failed"):
            break
        time.sleep(0.5)
    raise AssertionError(f"approve_spend never waited for a person: {states(airflow, run_id)}")


def answer(airflow: LocalAirflow, run_id: str, option: str) -> None:
    airflow.api(
        "PATCH",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve_spend/-1/hitlDetails",
        json={"chosen_options": [option], "params_input": {}},
    )


def over_budget_run(airflow: LocalAirflow, hour: int) -> str:
    airflow.wait_for_dag(DAG_ID)
    return airflow.trigger(
        DAG_ID,
        conf={"budget": 0.01, "approve_over_budget": True},
        logical_date=f"{DUBBING_DATE}T{hour:02d}:00:00Z",
    )


def test_approving_the_spend_over_budget_runs_and_pays_for_every_dub(airflow: LocalAirflow, emulator: Any):
    run_id = over_budget_run(airflow, 1)
    wait_for_the_question(airflow, run_id)
    submits_before = emulator.stats()["submits"]
    assert all(state != "success" for (task, _), state in states(airflow, run_id).items() if task == "lipsync")

    answer(airflow, run_id, "Approve")

    assert airflow.wait_for_run(DAG_ID, run_id) == "success"
    final = states(airflow, run_id)
    assert [final[("lipsync", index)] for index in (0, 1)] == ["success", "success"]
    assert emulator.stats()["submits"] - submits_before == 2
    cost = airflow.xcom(DAG_ID, run_id, "quote_dubs", key="cost")
    assert cost["within_budget"] is False and cost["count"] == 2
    assert "quoted 0.0500 USD in all (budget 0.01 USD)" in airflow.task_log(DAG_ID, run_id, "quote_dubs")
    lipsync_log = airflow.task_log(DAG_ID, run_id, "lipsync", map_index=0)
    assert "WaveSpeed quotes 0.0250 USD" in lipsync_log
    assert "cost 0.0250 USD (quoted before the submit)" in lipsync_log


def test_rejecting_the_spend_over_budget_skips_every_dub_and_pays_nothing(airflow: LocalAirflow, emulator: Any):
    run_id = over_budget_run(airflow, 2)
    wait_for_the_question(airflow, run_id)
    submits_before = emulator.stats()["submits"]

    answer(airflow, run_id, "Reject")

    airflow.wait_for_run(DAG_ID, run_id)
    final = states(airflow, run_id)
    assert final[("approve_spend", -1)] == "success", airflow.task_log(DAG_ID, run_id, "approve_spend")[-3000:]
    lipsync_states = {state for (task, _), state in final.items() if task == "lipsync"}
    assert lipsync_states == {"skipped"}, final
    assert final[("publish_manifest", -1)] == "skipped"
    assert emulator.stats()["submits"] == submits_before
