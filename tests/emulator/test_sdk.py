"""The official ``wavespeed`` SDK, unchanged, against the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import wavespeed

from tests.emulator.helpers import AUDIO, LIPSYNC, Api, Clips
from tests.emulator_fixtures import EmulatorFactory
from wavespeed_emulator import FaultConfig, WaveSpeedEmulator


@pytest.fixture
def client(emulator: WaveSpeedEmulator) -> wavespeed.Client:
    return wavespeed.Client(api_key=emulator.api_key, base_url=emulator.base_url, retry_interval=0.05)


def test_sdk_uploads_then_runs_lipsync_and_reads_the_result(
    client: wavespeed.Client, api: Api, tmp_path: Path, clips: Clips
) -> None:
    video = tmp_path / "face.mp4"
    shutil.copyfile(clips.video_2s, video)

    video_url = client.upload(str(video))
    output = client.run(LIPSYNC, {"video": video_url, "audio": AUDIO, "sync_mode": "loop"}, poll_interval=0.1)

    assert api.download(video_url) == video.read_bytes()
    [output_url] = output["outputs"]
    assert api.download(output_url) == video.read_bytes()
    prediction_id = output_url.split("/")[-2]
    result = client.get_result(prediction_id)
    assert result["data"]["status"] == "completed"
    assert result["data"]["outputs"] == [output_url]


def test_sdk_raises_the_task_failure_with_its_message(client: wavespeed.Client) -> None:
    with pytest.raises(RuntimeError, match=r"Prediction failed \(task_id: \w+\): Media access failed: video URL"):
        client.run(LIPSYNC, {"video": "https://x.invalid/v.mp4", "audio": AUDIO}, poll_interval=0.1)


def test_sdk_sync_mode_returns_outputs_in_one_call(client: wavespeed.Client) -> None:
    output = client.run(LIPSYNC, {"video": "https://m.example.com/v.mp4", "audio": AUDIO}, enable_sync_mode=True)

    assert output["outputs"][0].endswith("/output.mp4")


def test_sdk_recognises_the_sync_mode_timeout(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(sync_wait_seconds=0.1)
    client = wavespeed.Client(api_key=emulator.api_key, base_url=emulator.base_url)

    result = client.run_no_throw(
        LIPSYNC, {"video": "https://m.example.com/v.mp4", "audio": f"{AUDIO}?emulator_seconds=2"}, enable_sync_mode=True
    )

    assert result["status"] == "processing"
    assert "Sync mode timed out after 0.1 seconds" in result["error"]
    assert f"{emulator.base_url}/api/v3/predictions/{result['task_id']}/result" in result["error"]


def test_sdk_retries_polls_through_injected_server_errors(
    emulator: WaveSpeedEmulator, client: wavespeed.Client
) -> None:
    emulator.set_faults(FaultConfig(rate_503=0.3, rate_429=0.1, routes=("result",)))

    output = client.run(LIPSYNC, {"video": "https://m.example.com/v.mp4", "audio": AUDIO}, poll_interval=0.05)

    assert output["outputs"]
    assert emulator.stats()["faults"], "the seeded draw injected at least one fault"
