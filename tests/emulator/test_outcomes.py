from __future__ import annotations

import time

import pytest

from tests.emulator.helpers import AUDIO, Api, lipsync_inputs
from wavespeed_emulator.outcomes import TASK_ERRORS


def test_unreachable_host_fails_with_media_access_error_naming_field_and_url(api: Api) -> None:
    audio = "https://cdn.unreachable.invalid/dub.wav"
    prediction = api.submit_ok(lipsync_inputs(audio=audio))

    failed = api.wait_for(prediction["id"])

    assert failed["status"] == "failed"
    assert failed["code"] == 1402
    assert failed["error"] == f"Media access failed: audio URL is not publicly accessible: {audio}"
    assert failed["outputs"] == []
    assert failed["has_nsfw_contents"] == []


def test_failed_task_is_not_an_http_error(api: Api) -> None:
    prediction = api.submit_ok(lipsync_inputs(video="https://x.invalid/v.mp4"))
    api.wait_for(prediction["id"])

    response = api.get(f"/api/v3/predictions/{prediction['id']}/result")

    assert response.status_code == 200
    assert (response.json()["code"], response.json()["message"]) == (200, "success")


@pytest.mark.parametrize("code", [1200, 1401, 1403, 1405, 5000, 5003, 5004])
def test_emulator_fail_trigger_fails_with_that_code_and_its_documented_message(api: Api, code: int) -> None:
    prediction = api.submit_ok(lipsync_inputs(video=f"https://media.example.com/v.mp4?emulator_fail={code}"))

    failed = api.wait_for(prediction["id"])

    assert (failed["status"], failed["code"], failed["error"]) == ("failed", code, TASK_ERRORS[code])


def test_emulator_fail_trigger_accepts_1402_with_the_field_specific_message(api: Api) -> None:
    video = "https://media.example.com/v.mp4?emulator_fail=1402"
    failed = api.wait_for(api.submit_ok(lipsync_inputs(video=video))["id"])

    assert (failed["code"], failed["error"]) == (
        1402,
        f"Media access failed: video URL is not publicly accessible: {video}",
    )


@pytest.mark.parametrize(
    "trigger", ["emulator_fail=999", "emulator_fail=abc", "emulator_seconds=-1", "emulator_seconds=x"]
)
def test_malformed_trigger_is_a_400_so_test_typos_fail_loudly(api: Api, trigger: str) -> None:
    response = api.submit(lipsync_inputs(audio=f"{AUDIO}?{trigger}"))

    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid emulator_")


def test_nsfw_trigger_flags_the_output(api: Api) -> None:
    prediction = api.submit_ok(lipsync_inputs(video="https://media.example.com/v.mp4?emulator_nsfw=1"))

    completed = api.wait_for(prediction["id"])

    assert completed["status"] == "completed"
    assert completed["has_nsfw_contents"] == [True]


def test_seconds_trigger_sets_that_prediction_duration(api: Api) -> None:
    slow = api.submit_ok(lipsync_inputs(audio=f"{AUDIO}?emulator_seconds=30"))
    instant = api.submit_ok(lipsync_inputs(audio=f"{AUDIO}?emulator_seconds=0"))

    assert api.wait_for(instant["id"])["timings"] == {"inference": 0}
    assert api.result(slow["id"])["status"] == "processing"


def test_own_media_url_that_does_not_exist_fails_with_media_access_error(api: Api) -> None:
    missing = f"{api.base_url}/media/uploads/0000/gone.mp4"

    failed = api.wait_for(api.submit_ok(lipsync_inputs(video=missing))["id"])

    assert failed["code"] == 1402


def test_durations_are_drawn_per_prediction_from_the_seeded_range(emulator_factory) -> None:
    def durations(seed: int) -> list[int]:
        api = Api(emulator_factory(prediction_seconds=(0.1, 0.5), queue_seconds=0.0, seed=seed))
        prediction_ids = [api.submit_ok()["id"] for _ in range(4)]
        time.sleep(0.6)
        return [api.wait_for(prediction_id)["timings"]["inference"] for prediction_id in prediction_ids]

    first, again = durations(seed=7), durations(seed=7)

    assert first == again
    assert all(100 <= duration <= 500 for duration in first)
    assert len(set(first)) > 1
