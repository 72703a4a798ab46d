"""The provider inside a real Airflow 3: api-server, scheduler, triggerer, dag-processor, SQLite.

The example DAGs are triggered through Airflow's REST API, run by a LocalExecutor worker, waited
for by the triggerer, and checked through the API, against the emulator in its own process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_wavespeed.emulator import WaveSpeedEmulator
from devstack.airflow_stack import AIRFLOW_VERSION, LocalAirflow
from devstack.clips import make_audio, make_video, media_duration
from tests.conftest import EXAMPLE_DAGS
from tests.emulator_fixtures import fast_emulator_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        AIRFLOW_VERSION < (3, 1),
        reason="the harness drives Airflow 3.1+'s api-server; 2.11 has none, and 3.0.2's /auth/token answers 500",
    ),
]

DUBBING_DATE = "2026-11-20"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    # Long enough that the task is seen deferred, short enough for a quick suite.
    process = WaveSpeedEmulator.spawn(fast_emulator_config(prediction_seconds=(6.0, 6.0)))
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    # Real media: the emulator renders uploads, and fails those that are not media.
    make_video(root / "interview.mp4", 2)
    make_audio(root / "interview.fr.wav", 3)
    incoming = root / "incoming" / DUBBING_DATE
    make_video(incoming / "talk.mp4", 1)
    for name in ("talk.fr.wav", "talk.de.wav"):
        make_audio(incoming / name, 1)
    return root


@pytest.fixture(scope="module")
def airflow(emulator: Any, media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    stack = LocalAirflow(
        home=tmp_path_factory.mktemp("airflow-home"),
        dags_folder=Path(EXAMPLE_DAGS),
        extra_env={"WAVESPEED_EXAMPLE_MEDIA": str(media), "WAVESPEED_EXAMPLE_STORAGE": f"file://{media}"},
    )
    try:
        stack.start()
        stack.create_connection(
            {
                "connection_id": "wavespeed_default",
                "conn_type": "wavespeed",
                "host": emulator.base_url,
                "password": emulator.api_key,
            }
        )
        yield stack
    finally:
        stack.stop()


def run_to_the_end(airflow: LocalAirflow, dag_id: str, **trigger: Any) -> tuple[str, str, set[str]]:
    """Trigger ``dag_id``; return its run id, final state, and every task state seen meanwhile."""
    airflow.wait_for_dag(dag_id)
    run_id = airflow.trigger(dag_id, **trigger)
    seen: set[str] = set()
    state = airflow.wait_for_run(
        dag_id, run_id, on_poll=lambda instances: seen.update(str(ti["state"]) for ti in instances)
    )
    return run_id, state, seen


def test_example_lipsync_defers_and_the_triggerer_completes_it(airflow: LocalAirflow, emulator: Any, media: Path):
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
    assert links == {"WaveSpeed output": result["outputs"][0]}
    assert emulator.stats()["duplicate_submits"] == 0


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
    assert sorted(path.name for path in dubbed.iterdir()) == ["manifest.json", "talk.de.mp4", "talk.fr.mp4"]


def test_the_api_key_appears_in_no_log_and_no_xcom(airflow: LocalAirflow, emulator: Any):
    # Runs last in this module: every DAG above has left its logs by now.
    assert emulator.api_key not in airflow.component_logs()
    for run in airflow.api("GET", "/dags/~/dagRuns")["dag_runs"]:
        for instance in airflow.task_instances(run["dag_id"], run["dag_run_id"]):
            if instance["try_number"]:
                log = airflow.task_log(
                    run["dag_id"], run["dag_run_id"], instance["task_id"], instance["try_number"], instance["map_index"]
                )
                assert emulator.api_key not in log
    entries = airflow.api("GET", "/dags/~/dagRuns/~/taskInstances/~/xcomEntries", params={"limit": 1000})
    assert emulator.api_key not in repr(entries)
