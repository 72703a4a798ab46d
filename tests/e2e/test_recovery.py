"""After an uncertain submit, the one step the failure prints really lets the task pay again (Airflow 3.3).

The emulator loses the submit's answer after accepting it (a 502), so the task fails with
``uncertain_submit="fail"`` and prints a ``curl -X DELETE`` of the task state store key. The
test runs that exact command, with a real token, then clears the task: its next try submits anew
and succeeds, and nothing else was needed.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest
import requests

from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_3_PLUS
from devstack.airflow_stack import LocalAirflow
from devstack.uploads import upload
from tests.e2e.conftest import requires_api_server
from wavespeed_emulator import FaultConfig

pytestmark = [
    pytest.mark.e2e,
    requires_api_server,
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the task state store is Airflow 3.3's"),
]
DAG_ID, TASK_ID = "e2e_recovery", "lipsync"


def test_the_printed_rest_command_clears_the_uncertain_submit_and_the_cleared_task_pays_once_more(
    airflow: LocalAirflow, emulator: Any, media: Any
):
    video, audio = upload(emulator, media / "interview.mp4"), upload(emulator, media / "interview.fr.wav")
    conf = {"video": f"{video}?recovery=1", "audio": audio}
    airflow.wait_for_dag(DAG_ID)
    emulator.set_faults(FaultConfig(rate_502=1.0, after_accept_rate=1.0, routes=("submit",)))
    try:
        run_id = airflow.trigger(DAG_ID, conf=conf)
        assert airflow.wait_for_run(DAG_ID, run_id) == "failed"
    finally:
        emulator.set_faults(FaultConfig())
    # The API serves structured log lines as JSON, quotes escaped.
    log = airflow.task_log(DAG_ID, run_id, TASK_ID).replace('\\"', '"')
    assert "WaveSpeedSubmissionUncertainError" in log
    (command,) = set(re.findall(r'curl -X DELETE "[^"]+" -H "Authorization: Bearer \$AIRFLOW_TOKEN"', log))
    submits_before = emulator.stats()["submits"]

    token = requests.post(
        f"{airflow.url}/auth/token",
        json={"username": "admin", "password": airflow.admin_password},
        timeout=30,
    ).json()["access_token"]
    deleted = subprocess.run(  # the printed command, as a person pastes it into a shell
        ["/bin/bash", "-c", f"{command} --fail --silent --show-error --write-out '%{{http_code}}'"],
        env={**os.environ, "AIRFLOW_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (deleted.returncode, deleted.stdout) == (0, "204"), deleted.stderr
    airflow.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dag_run_id": run_id, "task_ids": [TASK_ID], "only_failed": True, "dry_run": False},
    )

    assert airflow.wait_for_run(DAG_ID, run_id) == "success"
    assert emulator.stats()["submits"] == submits_before + 1, "the cleared task paid once more, as asked"
