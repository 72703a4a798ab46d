"""Re-runs never pay twice, each media file is uploaded once, and no task overwrites another's output.

Counted with the emulator's own counters: an upload is one ``upload_ticket`` request (the direct
upload flow), a paid prediction one accepted submit.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from devstack.clips import make_audio, make_video
from tests.integration.dag_runs import run_dag, run_example, task_states, xcom
from wavespeed_emulator import WaveSpeedEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAY = pendulum.datetime(2026, 11, 20, tz="UTC")
LANGUAGES = ("de", "es", "fr", "it", "ja")


def counts(emulator: WaveSpeedEmulator) -> tuple[int, int]:
    """(uploads, submits) so far."""
    stats = emulator.stats()
    return stats["requests"].get("upload_ticket", 0), stats["submits"]


def stored_files(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every output and its record: name -> (mtime_ns, bytes)."""
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(directory.glob("*.mp4*"))}


@pytest.fixture
def day_of_dubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One video and five dubs of it (each a different length, so different content) for DAY."""
    monkeypatch.setenv("WAVESPEED_EXAMPLE_MEDIA", str(tmp_path))
    monkeypatch.delenv("WAVESPEED_EXAMPLE_STORAGE", raising=False)
    incoming = tmp_path / "incoming" / DAY.to_date_string()
    make_video(incoming / "talk.mp4", 1)
    for number, language in enumerate(LANGUAGES):
        make_audio(incoming / f"talk.{language}.wav", 1 + number / 10)
    return tmp_path


def test_one_video_five_dubs_uploads_six_files_and_a_rerun_uploads_and_pays_nothing(
    lipsync_emulator: WaveSpeedEmulator, day_of_dubs: Path, caplog: pytest.LogCaptureFixture
):
    dubbed = day_of_dubs / "dubbed" / DAY.to_date_string()

    first = run_example("example_dubbing_pipeline", logical_date=DAY)

    assert str(first.state) == "success"
    assert counts(lipsync_emulator) == (6, 5)
    first_files = stored_files(dubbed)
    assert sorted(first_files) == sorted(
        [f"talk.{lang}.mp4" for lang in LANGUAGES] + [f"talk.{lang}.mp4.wavespeed.json" for lang in LANGUAGES]
    )
    record = json.loads((dubbed / "talk.fr.mp4.wavespeed.json").read_text())
    assert record["inputs"]["sync_mode"] == "remap"
    assert record["inputs"]["video"]["source"].endswith("talk.mp4")
    assert len(record["inputs"]["video"]["sha256"]) == 64
    assert record["task_id"] == "lipsync"
    assert record["run_id"] == first.run_id
    first_result = xcom(first, "lipsync", map_index=2)
    assert record["request_id"] == first_result["request_id"]

    caplog.set_level(logging.INFO)
    again = run_example("example_dubbing_pipeline", logical_date=DAY)  # the same day, re-run

    assert str(again.state) == "success"
    assert counts(lipsync_emulator) == (6, 5), "a re-run uploaded or submitted"
    assert stored_files(dubbed) == first_files, "a re-run touched a stored output or its record"
    assert xcom(again, "lipsync", map_index=2) == first_result, "the re-run returns the stored result"
    assert "from the same inputs" in caplog.text
    manifest = json.loads((dubbed / "manifest.json").read_text())
    assert [dub["request_id"] for dub in manifest["dubs"]] == [
        json.loads((dubbed / f"talk.{lang}.mp4.wavespeed.json").read_text())["request_id"] for lang in LANGUAGES
    ]

    make_audio(day_of_dubs / "incoming" / DAY.to_date_string() / "talk.de.wav", 2.5)  # a corrected dub
    caplog.clear()
    corrected = run_example("example_dubbing_pipeline", logical_date=DAY)

    assert str(corrected.state) == "success"
    assert counts(lipsync_emulator) == (7, 6), "only the changed dub is uploaded and paid for"
    now = stored_files(dubbed)
    changed = {name for name in now if now[name] != first_files[name]}
    assert changed == {"talk.de.mp4", "talk.de.mp4.wavespeed.json"}
    assert "changed: audio content" in caplog.text


def test_a_cached_upload_that_wavespeed_no_longer_serves_is_uploaded_again_before_paying(
    lipsync_emulator: WaveSpeedEmulator, tmp_path: Path
):
    video = make_video(tmp_path / "interview.mp4", 1)
    conf: dict[str, Any] = {"video": str(video), "audio": "https://media.example/fr.wav"}

    run_dag("it_lipsync", {**conf, "sync_mode": "cut_off"})
    run_dag("it_lipsync", {**conf, "sync_mode": "loop"})  # other inputs, the same video: the cache
    assert counts(lipsync_emulator) == (1, 2)

    assert lipsync_emulator.expire_uploads() == 1  # WaveSpeed deleted it, as it does after 7 days
    dag_run = run_dag("it_lipsync", {**conf, "sync_mode": "bounce"})

    assert str(dag_run.state) == "success"
    assert counts(lipsync_emulator) == (2, 3)
    assert all(
        prediction["status"] == "completed" for prediction in lipsync_emulator.stats()["predictions"].values()
    ), "a prediction was paid for with an input WaveSpeed no longer serves"


def test_mapped_tasks_on_one_output_file_fail_the_second_before_it_pays(
    lipsync_emulator: WaveSpeedEmulator, tmp_path: Path
):
    target = tmp_path / "dubbed" / "talk.mp4"
    pairs = [
        {"video": f"https://media.example/talk.mp4?take={n}", "audio": "https://media.example/fr.wav"} for n in range(2)
    ]

    # A templated output_path that renders to the same file for every map index: known only at run time.
    dag_run = run_dag("it_mapped_lipsync", {"pairs": pairs, "output_path": str(target)})

    # Which map index claims the file first is the executor's choice, not the test's.
    states = {map_index: state for (task_id, map_index), state in task_states(dag_run).items() if task_id == "dub"}
    assert sorted(states.values()) == ["failed", "success"]
    assert lipsync_emulator.stats()["submits"] == 1, "the second task paid for an output it could not store"
    record = json.loads(Path(f"{target}.wavespeed.json").read_text())
    assert states[record["map_index"]] == "success"
    assert target.read_bytes(), "the first task's paid output was lost"


def test_a_mapped_task_with_a_literal_output_file_fails_when_the_dag_is_parsed():
    from airflow.providers.common.compat.sdk import DAG

    with (
        DAG("parse_check", schedule=None, start_date=DAY),
        pytest.raises(ValueError, match="one file for every map index") as raised,
    ):
        LipsyncOperator.partial(task_id="lipsync", output_path="/data/dubbed/talk.mp4").expand(
            audio=["https://media.example/fr.wav", "https://media.example/de.wav"],
            video=["https://media.example/talk.mp4"],
        )

    message = str(raised.value)
    assert "'lipsync'" in message and "output_path='/data/dubbed/talk.mp4'" in message
    assert "one file for every map index" in message and "a trailing '/'" in message


def test_a_sensor_stores_the_output_with_its_record_and_a_rerun_neither_waits_nor_downloads(
    lipsync_emulator: WaveSpeedEmulator, tmp_path: Path
):
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

    request_id = (
        WaveSpeedHook()
        .submit(
            "sync/lipsync-1.9.0-beta", {"video": "https://media.example/v.mp4", "audio": "https://media.example/a.wav"}
        )
        .id
    )
    conf = {"request_id": request_id, "output_path": f"{tmp_path}/dubbed/"}

    first = run_dag("it_sense_and_store", conf)

    assert str(first.state) == "success"
    (stored,) = xcom(first, "wait")["stored_outputs"]
    assert stored == f"{tmp_path}/dubbed/{request_id}.mp4"
    assert json.loads(Path(f"{stored}.wavespeed.json").read_text())["request_id"] == request_id
    polls = lipsync_emulator.stats()["requests"]["result"]

    again = run_dag("it_sense_and_store", conf)

    assert str(again.state) == "success"
    assert xcom(again, "wait")["stored_outputs"] == [stored]
    assert lipsync_emulator.stats()["requests"]["result"] == polls, "the re-run asked WaveSpeed again"
