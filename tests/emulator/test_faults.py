from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest
import requests

from tests.emulator.helpers import Api
from wavespeed_emulator import FaultConfig, WaveSpeedEmulator

BALANCE = "/api/v3/balance"


def test_429_without_retry_after(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_429=1.0))

    response = api.get(BALANCE)

    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert response.json()["code"] == 429


def test_429_with_retry_after(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_429_retry_after=1.0, retry_after_seconds=3))

    response = api.get(BALANCE)

    assert (response.status_code, response.headers["Retry-After"]) == (429, "3")


@pytest.mark.parametrize(
    ("faults", "status"), [(FaultConfig(rate_500=1.0), 500), (FaultConfig(rate_503=1.0), 503)], ids=["500", "503"]
)
def test_server_errors_answer_the_error_envelope(
    api: Api, emulator: WaveSpeedEmulator, faults: FaultConfig, status: int
) -> None:
    emulator.set_faults(faults)

    response = api.get(BALANCE)

    assert response.status_code == status
    assert response.json()["code"] == status
    assert response.json()["data"] is None


def test_502_answers_a_gateway_html_page(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_502=1.0))

    response = api.get(BALANCE)

    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in response.text


def test_dropped_connection_closes_without_an_answer(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_drop=1.0))

    with pytest.raises(requests.ConnectionError):
        api.get(BALANCE)

    assert emulator.stats()["responses_by_route"]["balance"] == {"dropped": 1}


def test_slow_answer_comes_late_but_complete(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_slow=1.0, slow_seconds=0.3))

    started = time.monotonic()
    response = api.get(BALANCE)

    assert time.monotonic() - started >= 0.3
    assert response.json()["data"] == {"balance": 100.0}


def test_malformed_html_page_with_200(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_malformed=1.0, malformed_kinds=("html",)))

    response = api.get(BALANCE)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_malformed_truncated_json(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_malformed=1.0, malformed_kinds=("truncated_json",)))

    response = api.get(BALANCE)

    assert (response.status_code, response.headers["Content-Type"]) == (200, "application/json; charset=utf-8")
    assert response.text.startswith('{"code": 200')
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_malformed_envelope_with_an_error_code(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_malformed=1.0, malformed_kinds=("error_code",)))

    response = api.get(BALANCE)

    assert response.status_code == 200
    assert response.json() == {"code": 500, "message": "Internal server error", "data": None}


def test_malformed_submit_answer_without_the_prediction_id(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_malformed=1.0, malformed_kinds=("missing_id",), after_accept_rate=1.0))

    response = api.submit()

    data = response.json()["data"]
    assert response.status_code == 200
    assert "id" not in data
    assert data["status"] == "created"
    assert emulator.stats()["submits"] == 1, "the prediction exists although its id never reached the client"


def listed_prediction_count(api: Api) -> int:
    return len(api.post("/api/v3/predictions", json={}).json()["data"]["items"])


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(rate_500=1.0, after_accept_rate=1.0),
        FaultConfig(rate_502=1.0, after_accept_rate=1.0),
        FaultConfig(rate_504=1.0, after_accept_rate=1.0),
        FaultConfig(rate_drop=1.0, after_accept_rate=1.0),
        FaultConfig(rate_malformed=1.0, malformed_kinds=("truncated_json",), after_accept_rate=1.0),
    ],
    ids=["500", "502", "504", "drop", "truncated"],
)
def test_submit_fault_after_accept_leaves_a_prediction_behind(
    api: Api, emulator: WaveSpeedEmulator, faults: FaultConfig
) -> None:
    emulator.set_faults(faults)
    with contextlib.suppress(requests.ConnectionError):
        api.submit()
    emulator.set_faults(FaultConfig())

    assert listed_prediction_count(api) == 1
    assert emulator.stats()["faults_after_accept"] == 1


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(rate_500=1.0, after_accept_rate=0.0),
        FaultConfig(rate_drop=1.0, after_accept_rate=0.0),
        FaultConfig(rate_429=1.0, after_accept_rate=1.0),
        FaultConfig(rate_429_retry_after=1.0, after_accept_rate=1.0),
        FaultConfig(rate_503=1.0, after_accept_rate=1.0),
    ],
    ids=["500-before", "drop-before", "429", "429-retry-after", "503"],
)
def test_submit_fault_before_accept_and_every_429_and_503_create_no_prediction(
    api: Api, emulator: WaveSpeedEmulator, faults: FaultConfig
) -> None:
    emulator.set_faults(faults)
    with contextlib.suppress(requests.ConnectionError):
        api.submit()
    emulator.set_faults(FaultConfig())

    assert listed_prediction_count(api) == 0
    assert emulator.stats()["submits"] == 0


def test_before_accept_routes_keep_faults_there_ahead_of_the_handler(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_500=1.0, after_accept_rate=1.0, before_accept_routes=("submit",)))
    assert api.submit().status_code == 500
    assert api.get(BALANCE).status_code == 500
    stats = emulator.stats()
    emulator.set_faults(FaultConfig())

    assert listed_prediction_count(api) == 0, "a fault on a before-accept route creates nothing"
    assert stats["faults_by_route"] == {"submit": {"500": 1}, "balance": {"500": 1}}
    assert stats["faults_after_accept_by_route"] == {"submit": 0, "balance": 1}


def test_faults_apply_only_to_the_chosen_routes(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_503=1.0, routes=("result",)))

    prediction_id = api.submit_ok()["id"]
    result = api.get(f"/api/v3/predictions/{prediction_id}/result")

    assert result.status_code == 503
    assert api.get(BALANCE).status_code == 200


def test_faults_never_touch_media_downloads(api: Api, emulator: WaveSpeedEmulator) -> None:
    output_url = api.wait_for(api.submit_ok()["id"])["outputs"][0]
    emulator.set_faults(FaultConfig(rate_500=1.0))

    assert api.anonymous.get(output_url, timeout=10).status_code == 200


def test_faults_are_reproducible_from_the_seed(api: Api, emulator: WaveSpeedEmulator) -> None:
    def statuses() -> list[int]:
        emulator.set_faults(FaultConfig(rate_500=0.3, rate_429=0.3))
        return [api.get(BALANCE).status_code for _ in range(30)]

    first = statuses()

    assert statuses() == first
    assert {200, 429, 500} == set(first)


def test_stats_count_faults_by_kind(api: Api, emulator: WaveSpeedEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_500=1.0, after_accept_rate=0.0))
    api.get(BALANCE)
    emulator.set_faults(FaultConfig(rate_malformed=1.0, malformed_kinds=("html",)))
    api.get(BALANCE)

    stats = emulator.stats()

    assert stats["faults"] == {"500": 1, "malformed_html": 1}
    assert stats["responses_by_route"]["balance"] == {"500": 1, "200": 1}


def test_admin_endpoint_sets_and_validates_faults(api: Api) -> None:
    admin = f"{api.base_url}/_emulator/faults"

    applied = requests.post(admin, json={"rate_503": 1, "routes": ["balance"]}, timeout=10)
    unknown = requests.post(admin, json={"rate_505": 1}, timeout=10)
    mistyped = requests.post(admin, json={"rate_503": "often"}, timeout=10)

    assert applied.status_code == 200
    assert applied.json()["faults"]["rate_503"] == 1.0
    assert api.get(BALANCE).status_code == 503
    assert (unknown.status_code, unknown.json()) == (400, {"error": "unknown fault setting 'rate_505'"})
    assert (mistyped.status_code, mistyped.json()) == (400, {"error": "rate_503 must be a float, got 'often'"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rate_500": 0.6, "rate_503": 0.6}, "fault rates add up to 1.2"),
        ({"rate_drop": 1.5}, "rate_drop must be between 0 and 1"),
        ({"routes": ("submit", "downloads")}, "unknown routes ['downloads']"),
        ({"malformed_kinds": ("xml",)}, "malformed_kinds must be a non-empty subset"),
        ({"slow_seconds": -1.0}, "retry_after_seconds and slow_seconds must not be negative"),
    ],
)
def test_fault_config_rejects_impossible_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FaultConfig(**settings)


def test_fault_config_round_trips_through_json() -> None:
    config = FaultConfig(rate_429=0.1, routes=("submit", "result"), malformed_kinds=("html",))

    assert FaultConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_stats_record_when_faults_struck_the_reads_of_each_prediction(api: Api, emulator: WaveSpeedEmulator) -> None:
    prediction_id = api.submit_ok()["id"]
    emulator.set_faults(FaultConfig(rate_503=1.0, routes=("result",)))
    before = time.time()
    assert api.get(f"/api/v3/predictions/{prediction_id}/result").status_code == 503
    assert api.get(f"/api/v3/predictions/{prediction_id}/result").status_code == 503
    emulator.set_faults(FaultConfig())

    struck = emulator.stats()["fault_times_by_prediction"]
    assert list(struck) == [prediction_id]
    assert len(struck[prediction_id]) == 2 and all(before <= at <= time.time() for at in struck[prediction_id])
