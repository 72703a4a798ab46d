"""The example DAGs run as they are, end to end, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest

from devstack.clips import make_audio, make_video, media_duration
from tests.integration.dag_runs import map_index_labels, run_example, task_states, xcom
from wavespeed_emulator import WaveSpeedEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


@pytest.fixture
def media(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples' media directory, with a clip and its French dub."""
    monkeypatch.setenv("WAVESPEED_EXAMPLE_MEDIA", str(tmp_path))
    monkeypatch.delenv("WAVESPEED_EXAMPLE_STORAGE", raising=False)
    # Real media: the emulator renders uploads, and fails those that are not media.
    make_video(tmp_path / "interview.mp4", 1)
    make_audio(tmp_path / "interview.fr.wav", 1.5)
    return tmp_path


def test_example_lipsync_runs_with_its_defaults(lipsync_emulator: WaveSpeedEmulator, media: Path):
    dag_run = run_example("example_lipsync")

    assert str(dag_run.state) == "success"
    result = xcom(dag_run, "lipsync")
    assert Path(result["stored_outputs"][0]).parent == media / "lipsynced"
    assert media_duration(result["stored_outputs"][0]) == pytest.approx(1.0, abs=0.15), "cut_off: the shorter input"
    assert lipsync_emulator.stats()["submits"] == 1


def test_example_submit_and_sense_runs_with_its_defaults(lipsync_emulator: WaveSpeedEmulator, media: Path):
    dag_run = run_example("example_submit_and_sense")

    assert str(dag_run.state) == "success"
    assert xcom(dag_run, "wait_for_lipsync")["request_id"] == xcom(dag_run, "submit", key="request_id")


def test_example_dubbing_pipeline_dubs_every_language_and_writes_a_manifest(
    lipsync_emulator: WaveSpeedEmulator, media: Path
):
    incoming = media / "incoming" / "2026-11-20"
    incoming.mkdir(parents=True)
    # Each clip of its own length: files of equal content are uploaded once and give equal inputs.
    for tenths, name in enumerate(("talk.mp4", "keynote.mp4")):
        make_video(incoming / name, 1 + tenths / 10)
    for tenths, name in enumerate(("talk.fr.wav", "talk.de.wav", "keynote.ja.wav")):
        make_audio(incoming / name, 1 + tenths / 10)

    dag_run = run_example("example_dubbing_pipeline", logical_date=pendulum.datetime(2026, 11, 20, tz="UTC"))

    assert str(dag_run.state) == "success"
    dubbed = media / "dubbed" / "2026-11-20"
    assert sorted(path.name for path in dubbed.iterdir()) == [
        "keynote.ja.mp4",
        "keynote.ja.mp4.wavespeed.json",
        "manifest.json",
        "talk.de.mp4",
        "talk.de.mp4.wavespeed.json",
        "talk.fr.mp4",
        "talk.fr.mp4.wavespeed.json",
    ]
    manifest = json.loads((dubbed / "manifest.json").read_text())
    assert len(manifest["dubs"]) == 3
    assert map_index_labels(dag_run, "lipsync") == ["keynote.ja", "talk.de", "talk.fr"]
    assert lipsync_emulator.stats()["submits"] == 3
    assert lipsync_emulator.stats()["duplicate_submits"] == 0


def test_example_dubbing_pipeline_dubs_the_folder_its_params_name(
    lipsync_emulator: WaveSpeedEmulator, media: Path, tmp_path_factory: pytest.TempPathFactory
):
    mine = tmp_path_factory.mktemp("my-storage")
    make_video(mine / "incoming" / "batch-7" / "promo.mp4", 1)
    make_audio(mine / "incoming" / "batch-7" / "promo.es.wav", 1)

    dag_run = run_example(
        "example_dubbing_pipeline",
        conf={"storage": f"file://{mine}", "day": "batch-7", "sync_mode": "cut_off"},
        logical_date=pendulum.datetime(2026, 11, 22, tz="UTC"),
    )

    assert str(dag_run.state) == "success"
    assert sorted(path.name for path in (mine / "dubbed" / "batch-7").iterdir()) == [
        "manifest.json",
        "promo.es.mp4",
        "promo.es.mp4.wavespeed.json",
    ]
    assert not (media / "dubbed").exists()


def test_example_dubbing_pipeline_skips_a_day_without_media(lipsync_emulator: WaveSpeedEmulator, media: Path):
    dag_run = run_example("example_dubbing_pipeline", logical_date=pendulum.datetime(2026, 11, 21, tz="UTC"))

    assert task_states(dag_run)[("discover_pairs", -1)] == "skipped"
    assert lipsync_emulator.stats()["submits"] == 0
