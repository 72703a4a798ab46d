"""The provider inside a real Airflow 3: api-server, scheduler, triggerer, dag-processor, SQLite.

The example DAGs are triggered through Airflow's REST API, run by a LocalExecutor worker, waited
for by the triggerer, and checked through the API, against the emulator in its own process.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devstack.airflow_stack import LocalAirflow
from devstack.clips import media_duration
from tests.e2e.conftest import DUBBING_DATE, requires_api_server, run_to_the_end

pytestmark = [pytest.mark.e2e, requires_api_server]


def test_example_lipsync_defers_and_the_triggerer_completes_it(airflow: LocalAirflow, emulator: Any, media: Path):
    # The stack and its emulator are shared by the package's tests: count this run's duplicates only.
    duplicates_before = emulator.stats()["duplicate_submits"]
    run_id, state, seen = run_to_the_end(airflow, "example_lipsync")

    assert state == "success", airflow.component_logs()[-5000:]
    assert "deferred" in seen
    result = airflow.xcom("example_lipsync", run_id, "lipsync")
    request_id = result["request_id"]
    (stored,) = result["stored_outputs"]
    assert Path(stored).parent == media / "lipsynced"
    assert media_duration(stored) == pytest.approx(2.0, abs=0.15), "a real render: cut_off keeps the shorter input"
    log = airflow.task_log("example_lipsync", run_id, "lipsync")
    # This line is written by the trigger, i.e. by the triggerer process, into the task's log.
    assert re.search(rf"WaveSpeed prediction {request_id}: \w+ -> completed", log)
    links = airflow.extra_links("example_lipsync", run_id, "lipsync")["extra_links"]
    assert links == {
        "Stored output": Path(stored).as_uri(),
        "WaveSpeed copy (deleted after 7 days)": result["outputs"][0],
    }
    assert "XCom not found" not in log, "a deferring task looked up an XCom that cannot exist yet"
    assert emulator.stats()["duplicate_submits"] == duplicates_before


def test_example_submit_and_sense(airflow: LocalAirflow):
    run_id, state, seen = run_to_the_end(airflow, "example_submit_and_sense")

    assert state == "success"
    assert "deferred" in seen
    submitted = airflow.xcom("example_submit_and_sense", run_id, "submit", key="request_id")
    assert airflow.xcom("example_submit_and_sense", run_id, "wait_for_lipsync")["request_id"] == submitted


def test_example_dubbing_pipeline(airflow: LocalAirflow, media: Path):
    _run_id, state, _ = run_to_the_end(airflow, "example_dubbing_pipeline", logical_date=f"{DUBBING_DATE}T00:00:00Z")

    assert state == "success"
    dubbed = media / "dubbed" / DUBBING_DATE
    assert sorted(path.name for path in dubbed.glob("*.mp4")) == ["talk.de.mp4", "talk.fr.mp4"]
    assert (dubbed / "manifest.json").exists()
