from __future__ import annotations

import re
import struct
import zlib

import pytest

from tests.emulator.helpers import AUDIO, LIPSYNC, Api, Clips, lipsync_inputs
from tests.emulator_fixtures import EmulatorFactory
from wavespeed_emulator import WaveSpeedEmulator

ISO_MILLISECONDS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_submit_answers_created_prediction_in_envelope(api: Api) -> None:
    response = api.submit()

    envelope = response.json()
    assert response.status_code == 200
    assert (envelope["code"], envelope["message"]) == (200, "success")
    data = envelope["data"]
    assert data["status"] == "created"
    assert data["model"] == LIPSYNC
    assert data["outputs"] == []
    assert data["has_nsfw_contents"] == []
    assert data["error"] == ""
    assert data["timings"] == {"inference": 0}
    assert data["urls"] == {"get": f"{api.base_url}/api/v3/predictions/{data['id']}/result"}
    assert ISO_MILLISECONDS_UTC.match(data["created_at"])


def test_prediction_goes_created_processing_completed_with_a_downloadable_output(
    emulator_factory: EmulatorFactory,
) -> None:
    api = Api(emulator_factory(queue_seconds=0.5, prediction_seconds=(0.4, 0.4)))
    prediction_id = api.submit_ok()["id"]

    assert api.result(prediction_id)["status"] == "created"
    processing = api.wait_for(prediction_id, "processing")
    assert processing["outputs"] == []
    completed = api.wait_for(prediction_id, "completed")

    assert completed["timings"] == {"inference": 400}
    assert completed["has_nsfw_contents"] == [False]
    [output_url] = completed["outputs"]
    assert output_url == f"{api.base_url}/media/outputs/{prediction_id}/output.mp4"
    assert api.download(output_url)[4:8] == b"ftyp"


def test_output_copies_an_uploaded_video_when_the_audio_is_a_url_it_cannot_fetch(api: Api, clips: Clips) -> None:
    video_url = api.upload(clips.video_2s)

    prediction = api.submit_ok(lipsync_inputs(video=video_url))
    completed = api.wait_for(prediction["id"], "completed")

    assert api.download(completed["outputs"][0]) == clips.video_2s.read_bytes()


def test_placeholder_output_is_deterministic_for_foreign_inputs(api: Api) -> None:
    first = api.wait_for(api.submit_ok()["id"])
    second = api.wait_for(api.submit_ok()["id"])

    assert api.download(first["outputs"][0]) == api.download(second["outputs"][0])


def test_image_model_outputs_a_valid_png(api: Api) -> None:
    prediction = api.submit_ok({"prompt": "a cat in a hat"}, model="wavespeed-ai/z-image/turbo")
    completed = api.wait_for(prediction["id"], "completed")

    png = api.download(completed["outputs"][0])
    assert completed["outputs"][0].endswith("/output.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (8, 8)
    idat_length = struct.unpack(">I", png[33:37])[0]
    assert len(zlib.decompress(png[41 : 41 + idat_length])) == 8 * (1 + 8 * 3)


@pytest.mark.parametrize("model", ["sync/lipsync-2", "sync/lipsync-2-pro", "sync/lipsync-3"])
def test_every_lipsync_model_is_served(api: Api, model: str) -> None:
    prediction = api.submit_ok(model=model)

    assert api.wait_for(prediction["id"])["status"] == "completed"


def test_both_result_paths_answer_the_same_prediction(api: Api) -> None:
    prediction_id = api.submit_ok()["id"]
    api.wait_for(prediction_id)

    short = api.get(f"/api/v3/predictions/{prediction_id}").json()
    long = api.get(f"/api/v3/predictions/{prediction_id}/result").json()

    assert short == long
    assert short["data"]["status"] == "completed"


def test_unknown_prediction_is_a_404_envelope(api: Api) -> None:
    response = api.get("/api/v3/predictions/0123456789abcdef/result")

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Prediction not found: 0123456789abcdef", "data": None}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"audio": AUDIO}, "Missing required parameter: video"),
        ({"video": "https://media.example.com/a.mp4"}, "Missing required parameter: audio"),
        (lipsync_inputs(video=None), "Missing required parameter: video"),
        (lipsync_inputs(video=""), "Invalid parameter: video must not be empty"),
        (lipsync_inputs(audio="   "), "Invalid parameter: audio must not be empty"),
        (
            lipsync_inputs(sync_mode="wobble"),
            "Invalid parameter: sync_mode 'wobble' is not one of bounce, loop, cut_off, silence, remap",
        ),
        (
            lipsync_inputs(sync_mode=""),
            "Invalid parameter: sync_mode '' is not one of bounce, loop, cut_off, silence, remap",
        ),
        (lipsync_inputs(video=42), "Invalid parameter: video must be of type string, got integer"),
        (lipsync_inputs(sync_mode=["loop"]), "Invalid parameter: sync_mode must be of type string, got array"),
        (
            lipsync_inputs(enable_sync_mode="yes"),
            "Invalid parameter: enable_sync_mode must be of type boolean, got string",
        ),
    ],
    ids=[
        "missing-video",
        "missing-audio",
        "null-video",
        "empty-video",
        "blank-audio",
        "bad-sync-mode",
        "empty-sync-mode",
        "video-not-string",
        "sync-mode-not-string",
        "flag-not-boolean",
    ],
)
def test_invalid_inputs_answer_400_naming_the_field(api: Api, inputs: dict[str, object], message: str) -> None:
    response = api.submit(inputs)

    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message, "data": None}


def test_body_that_is_not_a_json_object_is_a_400(api: Api) -> None:
    for body in (b"{not json", b"[1, 2]"):
        response = api.post(f"/api/v3/{LIPSYNC}", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["message"].startswith("Request body must be a JSON object")


def test_unknown_model_is_a_404_naming_it(api: Api) -> None:
    response = api.submit(model="sync/lipsync-9")

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Model not found: sync/lipsync-9", "data": None}


def test_invalid_submits_create_no_prediction(api: Api, emulator: WaveSpeedEmulator) -> None:
    api.submit({"audio": AUDIO})
    api.submit(model="sync/lipsync-9")

    assert emulator.stats()["submits"] == 0


def test_unknown_fields_are_ignored_and_defaults_filled_in(api: Api, emulator: WaveSpeedEmulator) -> None:
    api.submit_ok(lipsync_inputs(temperature=0.5, sync_mode="cut_off"))
    api.submit_ok(lipsync_inputs())

    stats = emulator.stats()
    assert stats["submits"] == 2
    assert stats["duplicate_submits"] == 1, "sync_mode defaults to cut_off and extra fields are ignored"


def test_list_pages_newest_first_with_execution_time(api: Api) -> None:
    prediction_ids = [api.submit_ok()["id"] for _ in range(3)]
    api.wait_for(prediction_ids[-1])

    first_page = api.post("/api/v3/predictions", json={"page": 1, "page_size": 2}).json()["data"]
    second_page = api.post("/api/v3/predictions", json={"page": 2, "page_size": 2}).json()["data"]

    assert first_page["page"] == 1
    listed = [item["id"] for item in first_page["items"] + second_page["items"]]
    assert listed == prediction_ids[::-1]
    assert all(item["executionTime"] == item["timings"]["inference"] for item in first_page["items"])


def test_list_filters_by_model_status_and_creation_time(api: Api) -> None:
    image = api.submit_ok({"prompt": "x"}, model="wavespeed-ai/z-image/turbo")
    lipsync = api.submit_ok()
    api.wait_for(lipsync["id"])
    running = api.submit_ok()

    def listed(**filters: object) -> list[str]:
        response = api.post("/api/v3/predictions", json={"page": 1, "page_size": 100, **filters})
        return [item["id"] for item in response.json()["data"]["items"]]

    assert listed(model="wavespeed-ai/z-image/turbo") == [image["id"]]
    assert set(listed(status="completed")) == {image["id"], lipsync["id"]}
    assert listed(created_after=running["created_at"]) == [running["id"]]
    assert listed(created_before=image["created_at"]) == [image["id"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"page_size": 101}, "Invalid parameter: page_size must be between 1 and 100, got 101"),
        ({"page_size": 0}, "Invalid parameter: page_size must be between 1 and 100, got 0"),
        ({"page": 0}, "Invalid parameter: page must be at least 1, got 0"),
        ({"status": "done"}, "Invalid parameter: status 'done' is not one of"),
        ({"created_after": "yesterday"}, "Invalid parameter: created_after 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_list_rejects_bad_parameters(api: Api, body: dict[str, object], message: str) -> None:
    response = api.post("/api/v3/predictions", json=body)

    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_bulk_delete_is_permanent_and_ignores_unknown_ids(api: Api) -> None:
    kept, deleted = api.submit_ok()["id"], api.submit_ok()["id"]
    output_url = api.wait_for(deleted)["outputs"][0]

    response = api.post("/api/v3/predictions/delete", json={"ids": [deleted, "no-such-id"]})

    assert response.json() == {"code": 200, "message": "success", "data": {"deleted_count": 1}}
    assert api.get(f"/api/v3/predictions/{deleted}/result").status_code == 404
    assert api.anonymous.get(output_url, timeout=10).status_code == 404
    assert api.result(kept)["id"] == kept


def test_bulk_delete_needs_a_list_of_ids(api: Api) -> None:
    assert api.post("/api/v3/predictions/delete", json={}).status_code == 400
    assert api.post("/api/v3/predictions/delete", json={"ids": [1, 2]}).status_code == 400


def test_delete_one_marks_the_prediction_deleted(api: Api) -> None:
    prediction_id = api.submit_ok()["id"]

    response = api.session.delete(f"{api.base_url}/api/v3/predictions/{prediction_id}", timeout=10)

    assert response.json()["data"]["status"] == "deleted"
    assert api.result(prediction_id)["status"] == "deleted"


def test_balance_starts_as_configured_and_each_submit_costs_its_price(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(balance=10.0, price_per_submit=0.25))

    api.submit_ok()
    api.submit_ok()

    assert api.get("/api/v3/balance").json() == {"code": 200, "message": "success", "data": {"balance": 9.5}}


def test_webhook_secret_has_the_documented_prefix_and_is_stable(api: Api) -> None:
    first = api.get("/api/v3/webhook/secret").json()["data"]["secret"]
    second = api.get("/api/v3/webhook/secret").json()["data"]["secret"]

    assert re.fullmatch(r"whsec_[0-9a-f]{48}", first)
    assert first == second


def test_public_base_url_shapes_every_generated_url(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(public_base_url="https://wavespeed.example.test/"))
    prediction = api.submit_ok()

    assert prediction["urls"]["get"].startswith("https://wavespeed.example.test/api/v3/predictions/")
    assert api.wait_for(prediction["id"])["outputs"][0].startswith("https://wavespeed.example.test/media/outputs/")
