from __future__ import annotations

import logging

import pytest
import requests

from tests.emulator.helpers import Api, lipsync_inputs
from wavespeed_emulator import WaveSpeedEmulator

UNAUTHORIZED = {"code": 401, "message": "Unauthorized: invalid or missing API key", "data": None}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Basic dGVzdDp0ZXN0", "Bearer ", "test-key"],
    ids=["missing", "wrong-key", "basic-scheme", "empty-token", "no-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v3/balance"),
        ("POST", "/api/v3/sync/lipsync-1.9.0-beta"),
        ("GET", "/api/v3/predictions/anything/result"),
        ("POST", "/api/v3/media/uploads"),
    ],
)
def test_every_api_route_answers_401_envelope_without_the_right_bearer_key(
    emulator: WaveSpeedEmulator, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.request(method, emulator.base_url + path, headers=headers, json={}, timeout=10)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_unauthorized_request_creates_no_prediction(emulator: WaveSpeedEmulator) -> None:
    requests.post(f"{emulator.base_url}/api/v3/sync/lipsync-2", json=lipsync_inputs(), timeout=10)

    assert emulator.stats()["submits"] == 0


def test_bearer_scheme_is_case_insensitive(emulator: WaveSpeedEmulator) -> None:
    response = requests.get(
        f"{emulator.base_url}/api/v3/balance", headers={"Authorization": f"bearer {emulator.api_key}"}, timeout=10
    )

    assert response.status_code == 200


def test_api_key_appears_in_no_log_record_and_no_repr(
    api: Api, emulator: WaveSpeedEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prediction = api.submit_ok()
    api.wait_for(prediction["id"])
    api.get("/api/v3/balance", headers={"Authorization": "Bearer wrong-key"})

    assert emulator.api_key not in caplog.text
    assert emulator.api_key not in repr(emulator.config)


def test_unknown_api_route_answers_in_the_envelope(api: Api) -> None:
    response = api.get("/api/v3/no/such/route")

    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "Method Not Allowed: GET /api/v3/no/such/route", "data": None}


def test_served_media_needs_no_key(api: Api) -> None:
    prediction = api.submit_ok()
    output_url = api.wait_for(prediction["id"])["outputs"][0]

    assert requests.get(output_url, timeout=10).status_code == 200
