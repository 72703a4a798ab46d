"""Whole DAG runs with ``dag.test()`` (a real Airflow, SQLite, the trigger run inline) against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.clips import make_video
from tests.integration.dag_runs import run_dag, task_states, xcom
from wavespeed_emulator import WaveSpeedEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

FAST_URL = "https://media.example/{name}"


def test_deferrable_lipsync_uploads_waits_in_the_trigger_and_stores_the_output(
    lipsync_emulator: WaveSpeedEmulator, tmp_path: Path
):
    video = make_video(tmp_path / "interview.mp4", 1)  # the emulator fails an upload that is not real media
    out_dir = tmp_path / "dubbed"

    dag_run = run_dag(
        "it_lipsync",
        {
            "video": str(video),
            "audio": FAST_URL.format(name="fr.wav"),
            "sync_mode": "loop",
            "output_path": f"{out_dir}/",
        },
    )

    assert str(dag_run.state) == "success"
    result = xcom(dag_run, "lipsync")
    assert result["status"] == "completed"
    assert result["model"] == "sync/lipsync-1.9.0-beta"
    (stored,) = result["stored_outputs"]
    assert stored == f"{out_dir}/{result['request_id']}.mp4"
    # The emulator's output of an uploaded video carries that video's bytes: the whole chain worked.
    assert Path(stored).read_bytes() == video.read_bytes()
    assert xcom(dag_run, "lipsync", key="request_id") == result["request_id"]
    stats = lipsync_emulator.stats()
    assert stats["submits"] == 1
    assert stats["duplicate_submits"] == 0
    assert stats["requests"]["upload_ticket"] == 1


def test_submit_then_deferrable_sensor(lipsync_emulator: WaveSpeedEmulator):
    dag_run = run_dag(
        "it_submit_and_sense", {"video": FAST_URL.format(name="v.mp4"), "audio": FAST_URL.format(name="a.wav")}
    )

    assert str(dag_run.state) == "success"
    submitted = xcom(dag_run, "submit")
    waited = xcom(dag_run, "wait")
    assert submitted["status"] == "created"
    assert waited["request_id"] == submitted["request_id"]
    assert waited["status"] == "completed"
    assert lipsync_emulator.stats()["submits"] == 1


def test_mapped_lipsync_over_five_pairs(lipsync_emulator: WaveSpeedEmulator, tmp_path: Path):
    languages = ["fr", "de", "es", "it", "ja"]
    pairs = [
        {"video": FAST_URL.format(name="talk.mp4"), "audio": FAST_URL.format(name=f"{lang}.wav")} for lang in languages
    ]

    dag_run = run_dag("it_mapped_lipsync", {"pairs": pairs, "output_path": f"{tmp_path}/"})

    assert str(dag_run.state) == "success"
    results = [xcom(dag_run, "dub", map_index=index) for index in range(len(pairs))]
    assert len({result["request_id"] for result in results}) == 5
    for result in results:
        assert Path(result["stored_outputs"][0]).is_file()
    stats = lipsync_emulator.stats()
    assert stats["submits"] == 5
    assert stats["duplicate_submits"] == 0


def test_failing_prediction_fails_the_task_once_with_wavespeeds_code(lipsync_emulator: WaveSpeedEmulator):
    dag_run = run_dag(
        "it_lipsync",
        {"video": "https://media.invalid/private.mp4", "audio": FAST_URL.format(name="a.wav"), "sync_mode": "cut_off"},
    )

    assert str(dag_run.state) == "failed"
    assert task_states(dag_run) == {("lipsync", -1): "failed"}
    assert xcom(dag_run, "lipsync", key="request_id")
    assert lipsync_emulator.stats()["submits"] == 1


def test_bad_sync_mode_from_run_conf_fails_before_anything_is_paid(lipsync_emulator: WaveSpeedEmulator):
    dag_run = run_dag(
        "it_lipsync",
        {"video": FAST_URL.format(name="v.mp4"), "audio": FAST_URL.format(name="a.wav"), "sync_mode": "fast"},
    )

    assert str(dag_run.state) == "failed"
    assert lipsync_emulator.stats()["submits"] == 0
