"""With a data dir, the account outlives the emulator process: predictions, outputs, uploads, the ledger."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from tests.emulator.helpers import Api, Clips, lipsync_inputs
from tests.emulator_fixtures import fast_emulator_config
from wavespeed_emulator import EmulatorConfig, EmulatorProcess, WaveSpeedEmulator
from wavespeed_emulator.persistence import AccountState


def restarted(config: EmulatorConfig, stopped: EmulatorProcess) -> EmulatorProcess:
    """A new emulator process on the same data dir and port, so URLs handed out before stay valid."""
    port = urlsplit(stopped.base_url).port
    assert port is not None
    return EmulatorProcess.start(replace(config, port=port))


def test_a_completed_prediction_its_output_and_the_ledger_survive_a_restart(tmp_path: Path, clips: Clips) -> None:
    config = fast_emulator_config(data_dir=tmp_path, price_per_submit=0.5)
    with EmulatorProcess.start(config) as first:
        api = Api(first)
        inputs = lipsync_inputs(video=api.upload(clips.video_2s), audio=api.upload(clips.audio_2s))
        prediction_id = api.submit_ok(inputs)["id"]
        before = api.wait_for(prediction_id, "completed")
        output = api.download(before["outputs"][0])
        balance = api.get("/api/v3/balance").json()["data"]["balance"]
        secret = api.get("/api/v3/webhook/secret").json()["data"]["secret"]

    with restarted(config, first) as second:
        api = Api(second)
        after = api.result(prediction_id)
        listed = api.post("/api/v3/predictions", json={"page": 1, "page_size": 10}).json()["data"]["items"]

        assert after["status"] == "completed"
        assert after["outputs"] == before["outputs"]
        assert api.download(after["outputs"][0]) == output
        assert api.download(inputs["video"]) == clips.video_2s.read_bytes()
        assert [item["id"] for item in listed] == [prediction_id]
        assert api.get("/api/v3/balance").json()["data"]["balance"] == balance < config.balance
        assert api.get("/api/v3/webhook/secret").json()["data"]["secret"] == secret
        assert second.stats()["charges"] == {prediction_id: round(config.balance - balance, 6)}


def test_a_prediction_in_flight_when_the_process_is_killed_completes_after_the_restart(
    tmp_path: Path, clips: Clips
) -> None:
    config = fast_emulator_config(data_dir=tmp_path, prediction_seconds=(1.0, 1.0))
    with EmulatorProcess.start(config) as first:
        api = Api(first)
        inputs = lipsync_inputs(video=api.upload(clips.video_2s), audio=api.upload(clips.audio_3s))
        prediction_id = api.submit_ok(inputs)["id"]
        first.process.kill()

    with restarted(config, first) as second:
        api = Api(second)
        assert api.result(prediction_id)["status"] in ("created", "processing")
        completed = api.wait_for(prediction_id, "completed", timeout=30)

        assert len(api.download(completed["outputs"][0])) > 0


def test_deleted_predictions_stay_deleted_and_their_charges_stay_charged(tmp_path: Path) -> None:
    config = fast_emulator_config(data_dir=tmp_path, price_per_submit=0.25, prediction_seconds=(0.0, 0.0))
    with EmulatorProcess.start(config) as first:
        api = Api(first)
        gone, marked = api.submit_ok(lipsync_inputs())["id"], api.submit_ok(lipsync_inputs())["id"]
        api.post("/api/v3/predictions/delete", json={"ids": [gone]})
        api.session.delete(f"{api.base_url}/api/v3/predictions/{marked}", timeout=30)

    with restarted(config, first) as second:
        api = Api(second)

        assert api.get(f"/api/v3/predictions/{gone}/result").status_code == 404
        assert api.result(marked)["status"] == "deleted"
        assert api.get("/api/v3/balance").json()["data"]["balance"] == config.balance - 0.5


def test_without_a_data_dir_a_restart_starts_a_fresh_account() -> None:
    config = fast_emulator_config()
    with WaveSpeedEmulator(config) as first:
        prediction_id = Api(first).submit_ok()["id"]

    with WaveSpeedEmulator(config) as second:
        assert Api(second).get(f"/api/v3/predictions/{prediction_id}/result").status_code == 404


def test_a_record_half_written_when_the_process_died_is_ignored_and_the_last_whole_one_kept(tmp_path: Path) -> None:
    state = AccountState(tmp_path)
    state.save_prediction({"id": "abc", "created_at": 1.0, "status": "whole"})
    half_written = tmp_path / "predictions" / "abc.json.1234abcd.tmp"
    half_written.write_text(json.dumps({"id": "abc", "created_at": 1.0, "status": "newer"})[:20])

    records = AccountState(tmp_path).prediction_records()

    assert records == [{"id": "abc", "created_at": 1.0, "status": "whole"}]
    assert not half_written.exists()
