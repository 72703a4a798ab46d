"""The emulator's full outages: every request answered 503, or connections really refused."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests

from tests.emulator.helpers import Api, lipsync_inputs
from wavespeed_emulator import WaveSpeedEmulator
from wavespeed_emulator.outage import OutageMode, OutagePlan

BALANCE = "/api/v3/balance"
SUBMIT = "/api/v3/sync/lipsync-1.9.0-beta"


def test_an_unavailable_outage_answers_every_request_503_processes_nothing_and_ends_by_itself(
    api: Api, emulator: WaveSpeedEmulator
) -> None:
    record = emulator.begin_outage(OutagePlan(OutageMode.UNAVAILABLE, seconds=1.0, retry_after_seconds=5))

    submit = api.post(SUBMIT, json=lipsync_inputs())
    balance = api.get(BALANCE)
    unauthenticated = requests.get(emulator.base_url + BALANCE, timeout=30)

    for response in (submit, balance, unauthenticated):
        assert response.status_code == 503
        assert response.json()["code"] == 503 and "try again later" in response.json()["message"]
        assert response.headers["Retry-After"] == "5"
    stats = emulator.stats()
    assert stats["submits"] == 0 and stats["predictions"] == {}, "nothing is processed during an outage"
    assert stats["outages"] == [record] and record["ends_at"] - record["started_at"] == pytest.approx(1.0)
    time.sleep(max(0.0, record["ends_at"] - time.time()) + 0.05)
    assert api.get(BALANCE).status_code == 200


def test_predictions_accepted_before_an_outage_finish_during_it(api: Api, emulator: WaveSpeedEmulator) -> None:
    prediction_id = api.post(SUBMIT, json=lipsync_inputs()).json()["data"]["id"]
    emulator.begin_outage(OutagePlan(OutageMode.UNAVAILABLE, seconds=1.5))
    assert api.get(f"/api/v3/predictions/{prediction_id}/result").status_code == 503
    time.sleep(1.6)

    result = api.get(f"/api/v3/predictions/{prediction_id}/result").json()["data"]

    assert result["status"] == "completed"
    first_read = emulator.stats()["predictions"][prediction_id]["first_final_read_at"]
    assert first_read is not None and first_read >= emulator.stats()["outages"][0]["ends_at"]


def connects(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def test_a_refused_outage_closes_the_listening_socket_and_its_open_connections_then_reopens_on_the_same_port(
    api: Api, emulator: WaveSpeedEmulator
) -> None:
    assert api.get(BALANCE).status_code == 200  # a pooled keep-alive connection now exists
    record = emulator.begin_outage(OutagePlan(OutageMode.REFUSED, seconds=1.5))
    time.sleep(0.5)

    assert not connects(emulator.base_url), "nothing listens"
    with pytest.raises(requests.ConnectionError):
        api.get(BALANCE)  # the pooled connection was closed too, and a new one is refused
    time.sleep(max(0.0, record["ends_at"] - time.time()) + 0.3)

    assert connects(emulator.base_url)
    assert api.get(BALANCE).status_code == 200
    assert emulator.stats()["outages"] == [record]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"mode": "down", "seconds": 1}, "mode='down'"),
        ({"mode": "refused", "seconds": 0}, "seconds=0"),
        ({"mode": "refused"}, "seconds=None"),
        ({"mode": "unavailable", "seconds": 1, "retry_after_seconds": "5"}, "retry_after_seconds='5'"),
        ({"mode": "unavailable", "seconds": 1, "length": 5}, "unknown outage settings"),
    ],
)
def test_bad_outage_settings_are_refused_naming_the_field(
    emulator: WaveSpeedEmulator, plan: dict[str, Any], message: str
) -> None:
    response = requests.post(f"{emulator.base_url}/_emulator/outage", json=plan, timeout=30)

    assert response.status_code == 400 and message in response.json()["error"]


def test_an_unavailable_outage_can_be_ended_early_over_http(api: Api, emulator: WaveSpeedEmulator) -> None:
    requests.post(
        f"{emulator.base_url}/_emulator/outage", json={"mode": "unavailable", "seconds": 60}, timeout=30
    ).raise_for_status()
    assert api.get(BALANCE).status_code == 503

    requests.delete(f"{emulator.base_url}/_emulator/outage", timeout=30).raise_for_status()

    assert api.get(BALANCE).status_code == 200
