from __future__ import annotations

import base64

from tests.emulator.helpers import AUDIO, Api, Clips, lipsync_inputs
from tests.emulator_fixtures import EmulatorFactory

WEBHOOK = "http://127.0.0.1:9/hook"


def test_sync_mode_answers_the_completed_prediction_in_one_request(api: Api) -> None:
    response = api.submit(lipsync_inputs(enable_sync_mode=True))

    data = response.json()["data"]
    assert response.status_code == 200
    assert data["status"] == "completed"
    assert api.download(data["outputs"][0])[4:8] == b"ftyp"


def test_sync_mode_answers_a_failed_prediction_as_failed(api: Api) -> None:
    data = api.submit(lipsync_inputs(video="https://x.invalid/v.mp4", enable_sync_mode=True)).json()["data"]

    assert (data["status"], data["code"]) == ("failed", 1402)


def test_sync_mode_past_its_wait_answers_processing_with_5004(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(sync_wait_seconds=0.2))

    response = api.submit(lipsync_inputs(audio=f"{AUDIO}?emulator_seconds=1", enable_sync_mode=True))

    envelope = response.json()
    data = envelope["data"]
    assert (response.status_code, envelope["code"]) == (200, 200)
    assert (data["status"], data["code"]) == ("processing", 5004)
    assert data["error"] == (
        "Sync mode timed out after 0.2 seconds. The prediction is still processing asynchronously."
    )
    assert api.wait_for(data["id"])["status"] == "completed", "the prediction goes on after the sync wait"


def test_base64_output_replaces_urls_with_the_file_bytes(api: Api, clips: Clips) -> None:
    video = clips.video_2s.read_bytes()
    inputs = lipsync_inputs(video=api.upload(clips.video_2s), enable_base64_output=True)

    polled = api.wait_for(api.submit_ok(inputs)["id"])
    in_sync_mode = api.submit({**inputs, "enable_sync_mode": True}).json()["data"]

    assert base64.b64decode(polled["outputs"][0], validate=True) == video
    assert base64.b64decode(in_sync_mode["outputs"][0], validate=True) == video


def test_base64_output_with_a_webhook_is_the_documented_bare_400(api: Api) -> None:
    response = api.submit(lipsync_inputs(enable_base64_output=True), params={"webhook": WEBHOOK})

    assert response.status_code == 400
    assert response.json() == {
        "error": "webhook callback does not support base64 output, please use the normal API to use base64 output"
    }
