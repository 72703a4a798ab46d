from __future__ import annotations

import json
import logging

import pendulum
import pytest

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedInsufficientBalanceError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.hooks.transport import is_retryable_error
from airflow_provider_wavespeed.models import ModelPrice, Prediction, PredictionStatus, catalog_from_api, parse_envelope
from tests.helpers.api_answers import BASE
from tests.helpers.catalog import LIPSYNC

URL = "https://api.wavespeed.test/api/v3/predictions/abc/result"


def envelope(data: object, code: int = 200, message: str = "success") -> bytes:
    return json.dumps({"code": code, "message": message, "data": data}).encode()


def prediction_data(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "abc",
        "model": "sync/lipsync-1.9.0-beta",
        "outputs": ["https://cdn.test/out.mp4"],
        "urls": {"get": URL},
        "has_nsfw_contents": [False],
        "status": "completed",
        "created_at": "2023-04-01T12:34:56.789Z",
        "error": "",
        "timings": {"inference": 2500},
    }
    data.update(overrides)
    return data


def test_prediction_is_parsed_once_with_every_documented_field():
    prediction = Prediction.from_api(parse_envelope(http_status=200, body=envelope(prediction_data()), url=URL))

    assert prediction.id == "abc"
    assert prediction.model == "sync/lipsync-1.9.0-beta"
    assert prediction.outputs == ("https://cdn.test/out.mp4",)
    assert prediction.has_nsfw_contents == (False,)
    assert prediction.result_url == URL
    assert prediction.state is PredictionStatus.COMPLETED
    assert prediction.created_at == pendulum.datetime(2023, 4, 1, 12, 34, 56, 789000, tz="UTC")
    assert prediction.inference_ms == 2500
    assert prediction.is_completed and prediction.is_terminal and not prediction.is_failed


@pytest.mark.parametrize("status", ["failed", "cancelled", "timeout", "deleted"])
def test_every_terminal_failure_status_raises_with_the_request_id_and_code(status):
    prediction = Prediction.from_api(prediction_data(status=status, error="media not reachable", code=1402))

    assert prediction.is_failed and prediction.is_terminal
    with pytest.raises(PredictionFailedError) as raised:
        prediction.raise_for_failure()
    assert raised.value.request_id == "abc"
    assert raised.value.error_code == 1402
    assert f"status '{status}'" in str(raised.value)
    assert "publicly reachable" in str(raised.value)


@pytest.mark.parametrize("status", ["created", "processing"])
def test_running_statuses_are_not_terminal(status):
    prediction = Prediction.from_api(prediction_data(status=status, outputs=[]))
    assert not prediction.is_terminal
    prediction.raise_for_failure()


def test_failed_task_with_envelope_code_200_is_data_not_an_http_error():
    data = parse_envelope(
        http_status=200, body=envelope(prediction_data(status="failed", error="boom", outputs=[])), url=URL
    )
    assert Prediction.from_api(data).is_failed


def test_unknown_status_counts_as_running_and_is_logged_once(caplog):
    caplog.set_level(logging.WARNING)
    first = Prediction.from_api(prediction_data(status="pending-review-x1"))
    Prediction.from_api(prediction_data(status="pending-review-x1"))

    assert first.state is None
    assert not first.is_terminal
    assert [r.getMessage().count("pending-review-x1") for r in caplog.records] == [1]


@pytest.mark.parametrize(
    ("http_status", "error_class"),
    [
        (401, WaveSpeedAuthError),
        (403, WaveSpeedAuthError),
        (404, WaveSpeedNotFoundError),
        (429, WaveSpeedRateLimitError),
        (500, WaveSpeedServerError),
        (503, WaveSpeedUnavailableError),
        (400, WaveSpeedAPIError),
    ],
)
def test_http_errors_map_to_typed_errors(http_status, error_class):
    with pytest.raises(error_class) as raised:
        parse_envelope(http_status=http_status, body=envelope(None, http_status, "nope"), url=URL)
    assert type(raised.value) is error_class
    assert raised.value.http_status == http_status
    assert raised.value.api_message == "nope"


def test_envelope_code_decides_even_under_http_200():
    with pytest.raises(WaveSpeedRateLimitError):
        parse_envelope(http_status=200, body=envelope(None, 429, "slow down"), url=URL)
    with pytest.raises(WaveSpeedAPIError, match="code 1401"):
        parse_envelope(http_status=200, body=envelope(None, 1401, "bad sync_mode"), url=URL)


def test_auth_error_points_at_the_connection():
    with pytest.raises(WaveSpeedAuthError, match="password \\(API Key\\) of the WaveSpeed connection"):
        parse_envelope(http_status=401, body=envelope(None, 401, "Unauthorized"), url=URL)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "HTML page"),
        (b'{"code": 200, "message": "success", "data": {"id": "ab', "not valid JSON"),
        (b"", "empty"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"[1, 2]", "not the documented envelope"),
        (b'{"data": {"id": "x"}}', "not the documented envelope"),
    ],
)
def test_malformed_success_bodies_raise_a_clear_typed_error(body, expected):
    with pytest.raises(WaveSpeedMalformedResponseError, match=expected):
        parse_envelope(http_status=200, body=body, url=URL)


def test_html_gateway_page_on_502_is_a_server_error_that_says_so():
    with pytest.raises(WaveSpeedServerError, match="HTML page") as raised:
        parse_envelope(http_status=502, body=b"<html>Bad Gateway</html>", url=URL, retry_after=3)
    assert raised.value.retry_after == 3


@pytest.mark.parametrize("data", [None, [], "x", {"status": "completed"}, {"id": ""}, {"id": 7}])
def test_prediction_without_an_id_is_malformed_not_a_key_error(data):
    with pytest.raises(WaveSpeedMalformedResponseError, match="data"):
        Prediction.from_api(data, url=URL)


def test_odd_field_types_do_not_crash_parsing():
    prediction = Prediction.from_api(
        {"id": "x", "status": None, "outputs": "nope", "urls": [], "timings": 5, "created_at": "yesterday"}
    )
    assert prediction.outputs == ()
    assert prediction.result_url == ""
    assert prediction.inference_ms is None
    assert prediction.created_at is None


# -- prices ----------------------------------------------------------------------------------------


def test_a_price_answer_parses_with_and_without_its_optional_fields():
    full = ModelPrice.from_api(
        {"model_id": "m/x", "price": "0.2", "discounted_price": 0.15, "discount_rate": 25, "currency": "USD"},
        model="m/x",
        url=BASE,
    )
    assert (full.price, full.charged, full.discount_rate) == (0.2, 0.15, 25.0)
    assert full.describe() == "0.1500 USD (list price 0.2000, 25% off)"
    bare = ModelPrice.from_api({"price": 0.05}, model="m/x", url=BASE)
    assert (bare.model, bare.charged, bare.currency) == ("m/x", 0.05, "USD")


@pytest.mark.parametrize(
    "data", [None, [], {"price": None}, {"price": "free"}, {"price": True}, {"price": float("nan")}]
)
def test_a_price_answer_without_a_number_is_malformed(data):
    with pytest.raises(WaveSpeedMalformedResponseError, match="no numeric data.price|no object"):
        ModelPrice.from_api(data, model="m/x", url=BASE)


# -- the model catalog -----------------------------------------------------------------------------


def test_the_catalog_lists_lipsync_with_its_documented_parameters():
    assert LIPSYNC.required == ("video", "audio")
    assert LIPSYNC.properties["sync_mode"]["enum"] == ["bounce", "loop", "cut_off", "silence", "remap"]
    assert LIPSYNC.properties["sync_mode"]["default"] == "cut_off"
    assert {name: spec["type"] for name, spec in LIPSYNC.properties.items()} == dict.fromkeys(
        ("video", "audio", "sync_mode"), "string"
    )


def test_odd_catalog_entries_are_skipped_not_fatal():
    models = catalog_from_api([{"model_id": "a/b"}, "junk", {"name": "no id"}], url=BASE)
    assert [entry.model for entry in models] == ["a/b"]
    assert models[0].required == () and models[0].properties == {}


# -- refusals for lack of funds (which answers count is inferred: WaveSpeed documents none) --------


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (402, {"code": 402, "message": "Payment Required"}),
        (200, {"code": 402, "message": "anything"}),
        (400, {"code": 400, "message": "Insufficient balance"}),
        (403, {"code": 403, "message": "Your balance is not enough, please top up"}),
        (500, {"code": 500, "message": "insufficient_funds"}),
        (400, {"code": 400, "message": "Not enough credits for this task"}),
    ],
)
def test_a_refusal_that_says_the_balance_is_short_is_one_typed_error_never_retried(http_status, body):
    with pytest.raises(WaveSpeedInsufficientBalanceError) as raised:
        parse_envelope(http_status=http_status, body=json.dumps(body).encode(), url=f"{BASE}/api/v3/sync/x")

    assert "Top up" in str(raised.value)
    assert not is_retryable_error(raised.value, idempotent=False)
    assert not is_retryable_error(raised.value, idempotent=True)


@pytest.mark.parametrize(
    ("http_status", "message", "error"),
    [
        (401, "Please top up to activate your key", WaveSpeedAuthError),
        (500, "balance service unavailable", WaveSpeedServerError),
        (403, "Account suspended", WaveSpeedAuthError),
    ],
)
def test_other_refusals_keep_their_own_type(http_status, message, error):
    body = json.dumps({"code": http_status, "message": message}).encode()
    with pytest.raises(error):
        parse_envelope(http_status=http_status, body=body, url=f"{BASE}/api/v3/sync/x")
