"""Fail-over in the distributed topology: PostgreSQL, CeleryExecutor with two workers, two triggerers.

One stack for the module (starting it takes a minute or two). The soak's DAG maps one deferrable
``LipsyncOperator`` per input pair; every pair is unique, so a second submit by any task shows in
the emulator's ``duplicate_submits`` counter.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.airflow_stack import DISTRIBUTED, HARNESS_UNAVAILABLE, LocalAirflow
from devstack.clips import make_audio, make_video
from devstack.soak import DAG_ID, DAGS, LIPSYNC_MODEL, TASK_ID, MetadataReader, Strike, WorkerKiller
from devstack.uploads import upload
from tests.emulator_fixtures import fast_emulator_config
from wavespeed_emulator import FaultConfig, WaveSpeedEmulator
from wavespeed_emulator.catalog import find_model
from wavespeed_emulator.routes import Route
from wavespeed_emulator.stats import input_key

# Each test starts its own ten-process distributed stack and waits out Airflow's failure detection:
# minutes of wall time, so they run with make test-long; make test's short distributed soak kills a
# triggerer and a Celery worker too.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.distributed,
    pytest.mark.long_running,
    pytest.mark.skipif(HARNESS_UNAVAILABLE is not None, reason=HARNESS_UNAVAILABLE or ""),
]

_takes = itertools.count()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Long predictions: a wait is still in progress when its triggerer dies and another takes it over.
    config = fast_emulator_config(data_dir=tmp_path_factory.mktemp("emulator"), prediction_seconds=(60.0, 60.0))
    # Its start-up waits for its own imports, which take long on a busy machine.
    process = WaveSpeedEmulator.spawn(config, startup_timeout=120.0)
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def media_urls(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    media = tmp_path_factory.mktemp("media")
    make_video(media / "face.mp4", 1.0, width=160, height=120, fps=10)
    make_audio(media / "voice.wav", 1.0)
    return upload(emulator, media / "face.mp4"), upload(emulator, media / "voice.wav")


@pytest.fixture(scope="module")
def airflow(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    output = tmp_path_factory.mktemp("output")
    stack = LocalAirflow(
        home=tmp_path_factory.mktemp("airflow-home"),
        dags_folder=DAGS,
        topology=DISTRIBUTED,
        extra_env={"WAVESPEED_SOAK_OUTPUT": f"{output}/"},
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
        stack.wait_for_dag(DAG_ID)
        yield stack
    finally:
        stack.stop()


def _pairs(media_urls: tuple[str, str], count: int) -> list[dict[str, str]]:
    video, audio = media_urls
    takes = [next(_takes) for _ in range(count)]
    return [{"video": f"{video}?take={n}", "audio": f"{audio}?take={n}"} for n in takes]


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_a_killed_triggerer_s_waits_move_to_the_survivor_with_their_deadline_and_no_second_submit(
    airflow: LocalAirflow, emulator: Any, media_urls: tuple[str, str]
):
    submits_before = emulator.stats()["submits"]
    reader = MetadataReader(airflow)
    run_id = airflow.trigger(DAG_ID, conf={"pairs": _pairs(media_urls, 4)})

    def all_waits_held() -> dict[int, dict[str, Any]] | None:
        instances = reader.task_instances(run_id)
        trigger_ids = [ti["trigger_id"] for ti in instances.values() if ti["state"] == "deferred"]
        triggers = reader.triggers()
        held = {t: triggers[t] for t in trigger_ids if t in triggers and triggers[t]["triggerer_id"] is not None}
        return held if len(instances) == 4 and len(held) == 4 else None

    waits = _wait(all_waits_held, 300, "four waits held by triggerers")
    hostnames = reader.triggerer_hostnames()
    victim_job = max(
        {row["triggerer_id"] for row in waits.values()},
        key=lambda job: sum(row["triggerer_id"] == job for row in waits.values()),
    )
    victim = hostnames[victim_job]
    orphaned = {trigger_id: row["end_time"] for trigger_id, row in waits.items() if row["triggerer_id"] == victim_job}

    airflow.kill(victim)
    killed_at = time.monotonic()

    def taken_over() -> dict[int, dict[str, Any]] | None:
        triggers = reader.triggers()
        moved = {
            t: triggers[t] for t in orphaned if t in triggers and triggers[t]["triggerer_id"] not in (None, victim_job)
        }
        return moved if len(moved) == len(orphaned) else None

    moved = _wait(taken_over, 120, f"the surviving triggerer to take over {sorted(orphaned)} from {victim}")
    print(f"{victim}'s {len(orphaned)} waits taken over after {time.monotonic() - killed_at:.1f} s")
    survivors = {reader.triggerer_hostnames()[row["triggerer_id"]] for row in moved.values()}
    assert survivors and victim not in survivors
    assert {t: row["end_time"] for t, row in moved.items()} == orphaned, "each wait keeps its deadline"

    assert airflow.wait_for_run(DAG_ID, run_id, timeout=600) == "success", airflow.component_logs()[-5000:]
    stats = emulator.stats()
    assert stats["submits"] - submits_before == 4
    assert stats["duplicate_submits"] == 0
    reader.close()


def test_a_celery_worker_killed_after_a_submit_has_its_task_retried_on_the_other_and_resume_the_prediction(
    airflow: LocalAirflow, emulator: Any, media_urls: tuple[str, str]
):
    submits_before = emulator.stats()["submits"]
    pairs = _pairs(media_urls, 3)
    model = find_model(LIPSYNC_MODEL)
    keys = [input_key(model.path, model.validate(pair)) for pair in pairs]
    # Every status read answers late, so a task is still running for seconds after its submit
    # (it reads the status once before deferring): the worker is killed in that window.
    emulator.set_faults(FaultConfig(rate_slow=1.0, slow_seconds=6.0, routes=(Route.RESULT.value,)))
    reader = MetadataReader(airflow)
    try:
        run_id = airflow.trigger(DAG_ID, conf={"pairs": pairs})
        killer = WorkerKiller(airflow, emulator, reader, run_id, list(enumerate(keys)), (Strike.CELERY_WORKER,))
        killer.run()  # in this thread: returns once it has killed (or run out of candidates)
        (kill,) = killer.kills
        assert kill.killed_pids, f"no worker was killed: {killer.misses}"
        emulator.set_faults(FaultConfig())

        assert airflow.wait_for_run(DAG_ID, run_id, timeout=900) == "success", airflow.component_logs()[-5000:]
    finally:
        emulator.set_faults(FaultConfig())
    final = reader.task_instances(run_id)[kill.map_index]
    assert final["try_number"] > kill.killed_in_try
    assert final["hostname"] != kill.component, "the retry ran on the surviving worker"
    request_id = airflow.api(
        "GET",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/request_id",
        params={"map_index": kill.map_index},
    )["value"]
    retry_log = airflow.task_log(DAG_ID, run_id, TASK_ID, try_number=final["try_number"], map_index=kill.map_index)
    assert f"Resuming WaveSpeed prediction {request_id}" in retry_log
    stats = emulator.stats()
    assert stats["submits"] - submits_before == 3
    assert stats["duplicate_submits"] == 0
    reader.close()
