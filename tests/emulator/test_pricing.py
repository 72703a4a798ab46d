"""The emulator prices like WaveSpeed documents: a quote endpoint, a catalog, charges, refusals.

A lipsync costs ``price_per_second`` per second of the output its ``sync_mode`` makes; the test
reads each rendered output's length from its ``mvhd`` box (`devstack.clips.media_duration`, no
code shared with the emulator's ffmpeg probe), so a charge is checked against the media itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.clips import media_duration
from tests.emulator.helpers import LIPSYNC, Api, Clips, lipsync_inputs
from tests.emulator_fixtures import EmulatorFactory
from wavespeed_emulator.catalog import SYNC_MODES

RATE = 0.05


def quote(api: Api, inputs: dict[str, Any], model: str = LIPSYNC) -> dict[str, Any]:
    response = api.post("/api/v3/model/price", json={"model_id": model, "inputs": inputs})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.mark.parametrize("sync_mode", SYNC_MODES)
def test_each_submit_is_charged_its_quote_the_rendered_output_s_length_times_the_rate(
    emulator_factory: EmulatorFactory, clips: Clips, tmp_path: Path, sync_mode: str
):
    api = Api(emulator_factory(price_per_second=RATE, discount_rate=0.1, queue_seconds=0.0, prediction_seconds=(0, 0)))
    inputs: dict[str, object] = {
        "video": api.upload(clips.video_2s),
        "audio": api.upload(clips.audio_3s),
        "sync_mode": sync_mode,
    }

    quoted = quote(api, inputs)
    prediction = api.submit_ok(inputs)
    done = api.wait_for(prediction["id"], timeout=60)
    output = tmp_path / "output.mp4"
    output.write_bytes(api.download(done["outputs"][0]))

    seconds = media_duration(output)
    assert quoted["price"] == pytest.approx(RATE * seconds, abs=0.005), "to the cent of the rendered length"
    assert quoted["discounted_price"] == pytest.approx(quoted["price"] * 0.9, abs=1e-4)
    assert (quoted["currency"], quoted["discount_rate"], quoted["model_id"]) == ("USD", 0.1, LIPSYNC)
    balance = api.get("/api/v3/balance").json()["data"]["balance"]
    assert balance == pytest.approx(100.0 - quoted["discounted_price"], abs=1e-9)


def test_media_it_cannot_measure_and_other_models_cost_the_flat_price(emulator_factory: EmulatorFactory):
    api = Api(emulator_factory(price_per_submit=0.3))

    assert quote(api, lipsync_inputs())["price"] == 0.3
    assert quote(api, {"prompt": "a cat"}, model="wavespeed-ai/z-image/turbo")["price"] == 0.3


def test_a_price_for_an_unknown_model_or_bad_inputs_is_refused_as_a_submit_would_be(api: Api):
    unknown = api.post("/api/v3/model/price", json={"model_id": "sync/nope", "inputs": lipsync_inputs()})
    missing = api.post("/api/v3/model/price", json={"model_id": LIPSYNC, "inputs": {"video": "https://x.test/v.mp4"}})
    bad_mode = api.post("/api/v3/model/price", json={"model_id": LIPSYNC, "inputs": lipsync_inputs(sync_mode="x")})

    assert (unknown.status_code, missing.status_code, bad_mode.status_code) == (404, 400, 400)
    assert "audio" in missing.json()["message"]


def test_the_catalog_lists_every_model_with_its_price_basis_and_lipsync_s_documented_schema(
    emulator_factory: EmulatorFactory,
):
    api = Api(emulator_factory(price_per_second=RATE))

    models = {model["model_id"]: model for model in api.get("/api/v3/models").json()["data"]}

    lipsync = models[LIPSYNC]
    assert (lipsync["base_price"], lipsync["formula"]) == (RATE, "base_price * output_seconds")
    schema = lipsync["api_schema"]["api_schemas"][0]["request_schema"]
    assert schema["required"] == ["video", "audio"]
    assert schema["x-order-properties"] == ["video", "audio", "sync_mode"]
    assert schema["properties"]["sync_mode"] == {
        "type": "string",
        "description": schema["properties"]["sync_mode"]["description"],
        "enum": ["bounce", "loop", "cut_off", "silence", "remap"],
        "default": "cut_off",
    }
    assert {"sync/lipsync-2", "sync/lipsync-3", "wavespeed-ai/z-image/turbo"} <= models.keys()


def test_a_submit_the_balance_cannot_cover_is_refused_and_creates_nothing(emulator_factory: EmulatorFactory):
    emulator = emulator_factory(balance=0.5, price_per_submit=0.3)
    api = Api(emulator)
    api.submit_ok()

    refused = api.submit()

    assert refused.status_code == 402
    assert refused.json()["code"] == 402
    assert "Insufficient balance" in refused.json()["message"]
    assert "costs 0.3000 USD, the balance is 0.2000 USD" in refused.json()["message"]
    stats = emulator.stats()
    assert stats["submits"] == 1 and len(stats["charges"]) == 1
    assert stats["balance"] == pytest.approx(0.2)


def test_the_refusal_s_status_and_message_are_configurable_and_status_0_never_refuses(
    emulator_factory: EmulatorFactory,
):
    custom = Api(
        emulator_factory(
            balance=0.0, price_per_submit=1.0, insufficient_balance_status=400, insufficient_balance_message="x"
        )
    )
    never = Api(emulator_factory(balance=1.0, price_per_submit=1.0, insufficient_balance_status=0))

    assert custom.submit().status_code == 400
    for _ in range(3):
        never.submit_ok()
    assert never.get("/api/v3/balance").json()["data"]["balance"] == -2.0
