from __future__ import annotations

import hashlib
import json

import pytest
import requests

from tests.emulator.helpers import LIPSYNC, Api, lipsync_inputs
from wavespeed_emulator import FaultConfig, WaveSpeedEmulator
from wavespeed_emulator.loopback import is_loopback_host, is_loopback_url


def test_stats_count_requests_per_route_and_status(api: Api, emulator: WaveSpeedEmulator) -> None:
    prediction_id = api.submit_ok()["id"]
    api.result(prediction_id)
    api.get(f"/api/v3/predictions/{prediction_id}")
    api.get("/api/v3/balance", headers={"Authorization": "Bearer wrong"})

    stats = emulator.stats()

    assert stats["requests"] == {"submit": 1, "result": 1, "get_prediction": 1, "balance": 1}
    assert stats["responses"] == {"200": 3, "401": 1}
    assert stats["responses_by_route"]["balance"] == {"401": 1}


def test_stats_count_identical_submits_as_duplicates(api: Api, emulator: WaveSpeedEmulator) -> None:
    for _ in range(3):
        api.submit_ok()
    api.submit_ok(lipsync_inputs(sync_mode="loop"))

    stats = emulator.stats()

    canonical = json.dumps(
        {"model": LIPSYNC, "inputs": lipsync_inputs(sync_mode="cut_off")}, sort_keys=True, separators=(",", ":")
    )
    key = hashlib.sha256(canonical.encode()).hexdigest()
    assert stats["submits"] == 4
    assert stats["submits_by_input"][key] == {"model": LIPSYNC, "count": 3}
    assert stats["duplicate_submits"] == 2


def test_stats_record_when_each_prediction_became_completed(api: Api, emulator: WaveSpeedEmulator) -> None:
    prediction_id = api.submit_ok()["id"]
    assert emulator.stats()["predictions"][prediction_id]["completed_at"] is None

    api.wait_for(prediction_id)
    timeline = emulator.stats()["predictions"][prediction_id]

    assert timeline["status"] == "completed"
    assert timeline["model"] == LIPSYNC
    assert timeline["completed_at"] >= timeline["created_at"] + 0.3


def test_stats_admin_endpoint_needs_no_key_and_is_not_counted(api: Api, emulator: WaveSpeedEmulator) -> None:
    api.submit_ok()

    response = requests.get(f"{api.base_url}/_emulator/stats", timeout=10)

    assert response.status_code == 200
    assert response.json()["submits"] == 1
    assert "unmatched" not in emulator.stats()["requests"]


def test_reset_forgets_predictions_stats_faults_and_spending(emulator_factory) -> None:
    emulator = emulator_factory(price_per_submit=1.0)
    api = Api(emulator)
    prediction_id = api.submit_ok()["id"]
    emulator.set_faults(FaultConfig(rate_503=1.0, routes=("list_predictions",)))

    response = requests.post(f"{api.base_url}/_emulator/reset", timeout=10)

    assert response.json() == {"reset": True}
    assert api.get(f"/api/v3/predictions/{prediction_id}/result").status_code == 404
    assert api.post("/api/v3/predictions", json={}).status_code == 200
    assert api.get("/api/v3/balance").json()["data"]["balance"] == 100.0
    stats = emulator.stats()
    assert (stats["submits"], stats["predictions"], stats["faults"]) == (0, {}, {})


def test_in_process_reset_matches_the_admin_endpoint(api: Api, emulator: WaveSpeedEmulator) -> None:
    api.submit_ok()

    emulator.reset()

    assert emulator.stats()["submits"] == 0
    assert api.post("/api/v3/predictions", json={}).json()["data"]["items"] == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
     ("10.0.0.1", False), ("example.com", False), ("localhost.example.com", False), (None, False)],
)  # fmt: skip
def test_only_loopback_hosts_count_as_this_machine(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_only_http_urls_to_loopback_count_as_local() -> None:
    assert is_loopback_url("http://127.0.0.1:8080/hook")
    assert is_loopback_url("https://[::1]/hook")
    assert not is_loopback_url("ftp://127.0.0.1/hook")
    assert not is_loopback_url("https://hooks.example.com/x")
