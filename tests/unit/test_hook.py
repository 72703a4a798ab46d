"""WaveSpeedHook's sync side against recorded, documented responses (requests_mock)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pendulum
import pytest
import requests
import urllib3.exceptions

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionWaitTimeoutError,
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedSubmissionUncertainError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.hooks import wavespeed as hook_module
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook, is_retryable_error
from tests.conftest import TEST_API_KEY

BASE = "https://api.wavespeed.test"
MODEL = "sync/lipsync-1.9.0-beta"
SUBMIT_URL = f"{BASE}/api/v3/{MODEL}"
RESULT_URL = f"{BASE}/api/v3/predictions/req-1/result"
INPUTS = {"video": "https://media.test/v.mp4", "audio": "https://media.test/a.wav", "sync_mode": "cut_off"}


def envelope(data: object, code: int = 200, message: str = "success") -> dict[str, object]:
    return {"code": code, "message": message, "data": data}


def prediction(status: str = "created", **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "req-1",
        "model": MODEL,
        "outputs": [],
        "urls": {"get": RESULT_URL},
        "has_nsfw_contents": [],
        "status": status,
        "created_at": "2026-11-23T10:00:00.000Z",
        "error": "",
        "timings": {"inference": 0},
    }
    if status == "completed":
        data.update(outputs=["https://cdn.test/out.mp4"], has_nsfw_contents=[False])
    data.update(overrides)
    return envelope(data)


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: the request never left this machine."""
    reason = urllib3.exceptions.NewConnectionError(mock.Mock(), "Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(mock.Mock(), SUBMIT_URL, reason))


@pytest.fixture
def hook(wavespeed_connection) -> WaveSpeedHook:
    wavespeed_connection(host=BASE, extra={"retry_limit": 3})
    return WaveSpeedHook()


# -- connection ------------------------------------------------------------------------------------


def test_connection_supplies_key_base_url_and_options(wavespeed_connection, requests_mock):
    wavespeed_connection(host="api.wavespeed.test", extra={"read_timeout": 7, "retry_limit": 2})
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 12.5}))

    assert WaveSpeedHook().get_balance() == 12.5
    sent = requests_mock.last_request
    assert sent.headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert sent.headers["User-Agent"].startswith("airflow-provider-wavespeed/")
    assert sent.timeout == (10.0, 7.0)  # (connect, read)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("", None, "https://api.wavespeed.ai"),
        ("api.example.test", None, "https://api.example.test"),
        ("127.0.0.1", 8099, "http://127.0.0.1:8099"),
        ("localhost:8099", None, "http://localhost:8099"),
        ("http://10.1.2.3:80/", None, "http://10.1.2.3:80"),
    ],
)
def test_base_url_from_host_and_port(wavespeed_connection, host, port, expected):
    wavespeed_connection(host=host, port=port)
    assert WaveSpeedHook().base_url == expected


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"read_timeout": "soon"}, "read_timeout"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"retry_limit": -1}, "retry_limit"),
        ({"retry_limit": 1.5}, "retry_limit"),
        ({"retry_delay": True}, "retry_delay"),
    ],
)
def test_invalid_connection_options_are_named(wavespeed_connection, extra, field):
    wavespeed_connection(extra=extra)
    with pytest.raises(ValueError, match=f"{field}=.*'wavespeed_default' must be"):
        WaveSpeedHook().base_url  # noqa: B018


def test_connection_without_key_says_where_to_put_it(wavespeed_connection):
    wavespeed_connection(password="")
    with pytest.raises(WaveSpeedError, match="has no API key: set its password"):
        WaveSpeedHook().base_url  # noqa: B018


def test_missing_default_connection_falls_back_to_the_sdk_environment_variable(monkeypatch, requests_mock, caplog):
    caplog.set_level(logging.INFO, logger=hook_module.__name__)
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-123456")
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://127.0.0.1:1234")
    requests_mock.get("http://127.0.0.1:1234/api/v3/balance", json=envelope({"balance": 1}))
    with mock.patch.object(hook_module, "mask_secret") as mask:
        assert WaveSpeedHook().get_balance() == 1.0
    mask.assert_called_once_with("env-key-123456")
    assert requests_mock.last_request.headers["Authorization"] == "Bearer env-key-123456"
    (source,) = [record.getMessage() for record in caplog.records if "API key from" in record.getMessage()]
    assert "WAVESPEED_API_KEY environment variable (there is no connection 'wavespeed_default')" in source
    assert "API http://127.0.0.1:1234 from the WAVESPEED_BASE_URL environment variable" in source
    assert "env-key-123456" not in source


def test_a_mistyped_connection_id_fails_naming_it_and_never_uses_the_environment(monkeypatch, requests_mock):
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-123456")
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://127.0.0.1:1234")

    with pytest.raises(WaveSpeedError, match="no Airflow connection wavespeed_conn_id='wavespeed_prod'") as raised:
        WaveSpeedHook("wavespeed_prod").get_balance()

    assert "stands in only for the default connection 'wavespeed_default'" in str(raised.value)
    assert not requests_mock.called


def test_the_hook_logs_where_its_key_and_base_url_came_from_never_the_key(hook, requests_mock, caplog):
    caplog.set_level(logging.INFO, logger=hook_module.__name__)
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 1}))

    hook.get_balance()

    (source,) = [record.getMessage() for record in caplog.records if "API key from" in record.getMessage()]
    assert "the password (API Key) of the WaveSpeed connection 'wavespeed_default'" in source
    assert f"API {BASE} from the host of the WaveSpeed connection 'wavespeed_default'" in source
    assert TEST_API_KEY not in source


def test_missing_connection_and_variable_explains_both_ways():
    with pytest.raises(WaveSpeedError, match="No Airflow connection 'wavespeed_default'.*WAVESPEED_API_KEY"):
        WaveSpeedHook().base_url  # noqa: B018


# Places a key could plausibly be read from by mistake; the hook must read none of them.
DECOY_ENVIRONMENT = {
    "WAVESPEED_KEY": "decoy-env-wavespeed-key",
    "WAVESPEED_TOKEN": "decoy-env-wavespeed-token",
    "WAVESPEED_API_TOKEN": "decoy-env-wavespeed-api-token",
    "AIRFLOW_VAR_WAVESPEED_API_KEY": "decoy-airflow-variable",
    "API_KEY": "decoy-env-api-key",
}
DECOY_EXTRAS = {"api_key": "decoy-extra-api-key", "token": "decoy-extra-token", "password": "decoy-extra-password"}


def connection_with_decoys(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    """``wavespeed_default`` with a login and key-like extras besides its password."""
    connection = {
        "conn_type": "wavespeed",
        "host": BASE,
        "login": "decoy-login",
        "password": password,
        "extra": {"retry_delay": 0, **DECOY_EXTRAS},
    }
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", json.dumps(connection))


def test_key_is_the_connection_password_and_nothing_else(monkeypatch, requests_mock):
    connection_with_decoys(monkeypatch, password=TEST_API_KEY)
    monkeypatch.setenv("WAVESPEED_API_KEY", "decoy-sdk-variable")
    for name, value in DECOY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 1}))

    WaveSpeedHook().get_balance()

    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {TEST_API_KEY}"


def test_an_existing_connection_without_a_password_never_falls_back(monkeypatch, requests_mock):
    # Falling back here would send a key the connection's owner never chose.
    connection_with_decoys(monkeypatch, password="")
    monkeypatch.setenv("WAVESPEED_API_KEY", "decoy-sdk-variable")

    with pytest.raises(WaveSpeedError, match="'wavespeed_default' has no API key: set its password"):
        WaveSpeedHook().get_balance()
    assert not requests_mock.called


def test_missing_connection_reads_only_the_sdk_environment_variable(monkeypatch, requests_mock):
    for name, value in DECOY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(WaveSpeedError, match="No Airflow connection 'wavespeed_default' and no WAVESPEED_API_KEY"):
        WaveSpeedHook().get_balance()
    assert not requests_mock.called


def test_key_is_registered_with_the_secret_masker(hook):
    with mock.patch.object(hook_module, "mask_secret") as mask:
        hook.base_url  # noqa: B018
    mask.assert_called_once_with(TEST_API_KEY)


def test_hook_construction_does_no_lookup():
    with mock.patch.object(WaveSpeedHook, "get_connection") as get_connection:
        WaveSpeedHook("anything")
    get_connection.assert_not_called()


def test_ui_field_behaviour_relabels_key_and_base_url():
    behaviour = WaveSpeedHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert "login" in behaviour["hidden_fields"]


# -- submit ----------------------------------------------------------------------------------------


def test_submit_posts_flat_inputs_and_parses_the_prediction(hook, requests_mock):
    requests_mock.post(SUBMIT_URL, json=prediction("created"))

    submitted = hook.submit(MODEL, INPUTS)

    assert submitted.id == "req-1"
    assert submitted.status == "created"
    assert submitted.created_at == pendulum.datetime(2026, 11, 23, 10, tz="UTC")
    assert requests_mock.last_request.json() == INPUTS
    assert requests_mock.last_request.qs == {}


def test_submit_passes_the_webhook_as_query_parameter(hook, requests_mock):
    requests_mock.post(SUBMIT_URL, json=prediction())
    hook.submit(MODEL, INPUTS, webhook="https://hooks.example.test/done?x=1")
    assert requests_mock.last_request.qs == {"webhook": ["https://hooks.example.test/done?x=1"]}


@pytest.mark.parametrize("model", ["", "lipsync", "sync/", "/sync/x", "sync//x", "sync/../balance", 5, "a/b?c"])
def test_submit_rejects_a_bad_model_path_before_sending(hook, requests_mock, model):
    with pytest.raises(ValueError, match="model=.*owner/model"):
        hook.submit(model, INPUTS)
    assert not requests_mock.called


def test_submit_calls_before_send_after_its_checks_and_before_the_request(hook, requests_mock):
    requests_mock.post(SUBMIT_URL, json=prediction("created"))
    calls: list[tuple[str, bool]] = []

    hook.submit(MODEL, INPUTS, before_send=lambda at: calls.append((at, requests_mock.called)))

    ((sent_at, request_already_sent),) = calls
    assert not request_already_sent
    assert datetime.fromisoformat(sent_at) <= datetime.now(UTC)
    with pytest.raises(ValueError, match="inputs must be JSON"):
        hook.submit(MODEL, {"video": object()}, before_send=lambda at: calls.append((at, True)))
    assert len(calls) == 1, "a submit refused before sending is not announced"


def test_submit_rejects_inputs_that_are_not_json(hook, requests_mock):
    with pytest.raises(ValueError, match="inputs must be JSON"):
        hook.submit(MODEL, {"video": object()})
    with pytest.raises(ValueError, match="inputs must be a mapping"):
        hook.submit(MODEL, ["video"])
    with pytest.raises(ValueError, match="webhook="):
        hook.submit(MODEL, INPUTS, webhook="ftp://x")
    assert not requests_mock.called


def test_submit_is_retried_after_429_honouring_retry_after(hook, requests_mock):
    requests_mock.post(
        SUBMIT_URL,
        [
            {"status_code": 429, "json": envelope(None, 429, "rate"), "headers": {"Retry-After": "0.01"}},
            {"json": prediction()},
        ],
    )
    with mock.patch("tenacity.nap.time.sleep") as sleep:
        assert hook.submit(MODEL, INPUTS).id == "req-1"
    assert requests_mock.call_count == 2
    sleep.assert_called_once_with(0.01)


def test_submit_is_retried_when_the_connection_never_opened(hook, requests_mock):
    requests_mock.post(SUBMIT_URL, [{"exc": refused()}, {"json": prediction()}])
    assert hook.submit(MODEL, INPUTS).id == "req-1"
    assert requests_mock.call_count == 2


def test_submit_gives_up_after_the_retry_limit_when_nothing_listens(hook, requests_mock):
    requests_mock.post(SUBMIT_URL, exc=refused())
    with pytest.raises(WaveSpeedConnectionError, match="could not connect") as raised:
        hook.submit(MODEL, INPUTS)
    assert not raised.value.request_sent
    assert requests_mock.call_count == 4  # 1 + retry_limit 3


@pytest.mark.parametrize(
    "unavailable",
    [
        {"status_code": 503, "json": envelope(None, 503, "Service Unavailable")},
        {"status_code": 503, "text": "<html>503 Service Temporarily Unavailable</html>"},
        {"json": envelope(None, 5003, "Service Unavailable: try again later")},
    ],
    ids=["503", "503-html", "code-5003"],
)
def test_a_submit_answered_unavailable_was_not_processed_and_is_retried(hook, requests_mock, unavailable):
    requests_mock.post(SUBMIT_URL, [unavailable, {"json": prediction()}])
    sent: list[str] = []

    assert hook.submit(MODEL, INPUTS, before_send=sent.append).id == "req-1"

    assert requests_mock.call_count == 2
    assert len(sent) == 1, "one submit, announced once, however often it is retried"


def test_a_submit_unavailable_past_the_retry_limit_is_not_uncertain(hook, requests_mock):
    requests_mock.post(SUBMIT_URL, status_code=503, json=envelope(None, 503, "Service Unavailable"))

    with pytest.raises(WaveSpeedUnavailableError, match="was not processed"):
        hook.submit(MODEL, INPUTS)

    assert requests_mock.call_count == 4  # 1 + retry_limit 3


@pytest.mark.parametrize(
    "response",
    [
        {"status_code": 500, "json": envelope(None, 500, "internal")},
        {"status_code": 502, "text": "<html>Bad Gateway</html>"},
        {"status_code": 504, "text": "<html>Gateway Time-out</html>"},
        {"exc": requests.ReadTimeout("read timed out")},
        {"exc": requests.ConnectionError("Connection aborted: RemoteDisconnected")},
        {"json": envelope({"status": "created"})},  # accepted, but the id was lost
        {"text": '{"code": 200, "data": {"id": "re'},  # accepted, body cut short
    ],
)
def test_submit_is_never_repeated_once_it_may_have_been_accepted(hook, requests_mock, response):
    requests_mock.post(SUBMIT_URL, [response])

    with pytest.raises(WaveSpeedSubmissionUncertainError) as raised:
        hook.submit(MODEL, INPUTS)

    assert requests_mock.call_count == 1
    message = str(raised.value)
    assert "may have created a paid prediction" in message
    assert "list_predictions" in message and "PredictionSensor" in message
    assert raised.value.model == MODEL
    assert TEST_API_KEY not in message


def test_submit_validation_error_is_not_retried_and_keeps_the_api_message(hook, requests_mock):
    requests_mock.post(
        SUBMIT_URL,
        status_code=400,
        json=envelope(None, 400, "Invalid sync_mode 'fast': one of bounce, loop, cut_off, silence, remap"),
    )
    with pytest.raises(WaveSpeedAPIError, match="Invalid sync_mode 'fast'"):
        hook.submit(MODEL, INPUTS)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_never_retried_and_never_show_the_key(hook, requests_mock, status):
    requests_mock.get(RESULT_URL, status_code=status, json=envelope(None, status, "Unauthorized"))
    with pytest.raises(WaveSpeedAuthError) as raised:
        hook.get_prediction("req-1")
    assert requests_mock.call_count == 1
    assert "Check the password (API Key) of the WaveSpeed connection" in str(raised.value)
    assert TEST_API_KEY not in str(raised.value)


# -- status reads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 500, "json": envelope(None, 500, "x")},
        {"status_code": 502, "text": "<html>Bad Gateway</html>"},
        {"status_code": 503, "json": envelope(None, 503, "x"), "headers": {"Retry-After": "0"}},
        {"status_code": 429, "json": envelope(None, 429, "x")},
        {"exc": requests.ReadTimeout("slow")},
        {"exc": requests.ConnectionError("reset")},
        {"text": '{"code": 200, "data": {"id": "re'},
    ],
)
def test_reads_retry_transient_failures(hook, requests_mock, failure):
    requests_mock.get(RESULT_URL, [failure, {"json": prediction("processing")}])
    assert hook.get_prediction("req-1").status == "processing"
    assert requests_mock.call_count == 2


def test_reads_give_up_after_the_retry_limit_with_the_last_error(hook, requests_mock):
    requests_mock.get(RESULT_URL, status_code=502, text="<html>Bad Gateway</html>")
    with pytest.raises(WaveSpeedServerError, match="HTML page"):
        hook.get_prediction("req-1")
    assert requests_mock.call_count == 4


def test_retry_waits_back_off_exponentially_with_jitter(wavespeed_connection, requests_mock):
    wavespeed_connection(host=BASE, extra={"retry_limit": 3, "retry_delay": 1})
    requests_mock.get(RESULT_URL, status_code=500, json=envelope(None, 500, "x"))
    with mock.patch("tenacity.nap.time.sleep") as sleep, pytest.raises(WaveSpeedServerError):
        WaveSpeedHook().get_prediction("req-1")
    delays = [call.args[0] for call in sleep.call_args_list]
    assert len(delays) == 3
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 3 and 4 <= delays[2] <= 5


def test_retry_after_as_http_date_is_honoured(hook, requests_mock):
    later = pendulum.now("UTC").add(seconds=30).format("ddd, DD MMM YYYY HH:mm:ss [GMT]")
    requests_mock.get(
        RESULT_URL,
        [
            {"status_code": 429, "json": envelope(None, 429, "x"), "headers": {"Retry-After": later}},
            {"json": prediction()},
        ],
    )
    with mock.patch("tenacity.nap.time.sleep") as sleep:
        hook.get_prediction("req-1")
    assert 25 <= sleep.call_args.args[0] <= 31


def test_unknown_request_id_says_what_to_check(hook, requests_mock):
    requests_mock.get(
        f"{BASE}/api/v3/predictions/missing/result", status_code=404, json=envelope(None, 404, "not found")
    )
    with pytest.raises(WaveSpeedNotFoundError, match="no prediction 'missing'.*7 days") as raised:
        hook.get_prediction("missing")
    assert raised.value.request_id == "missing"
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("request_id", ["", "   ", None])
def test_empty_request_id_is_rejected_before_sending(hook, requests_mock, request_id):
    with pytest.raises(ValueError, match="request_id="):
        hook.get_prediction(request_id)
    assert not requests_mock.called


def test_request_id_cannot_escape_the_result_path(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/v3/predictions/..%2Fbalance/result", json=prediction())
    hook.get_prediction("../balance")
    assert requests_mock.called


def test_wait_for_prediction_polls_until_completed(hook, requests_mock, caplog):
    caplog.set_level(logging.INFO)
    requests_mock.get(
        RESULT_URL,
        [
            {"json": prediction("created")},
            {"json": prediction("processing")},
            {"json": prediction("completed")},
        ],
    )
    with mock.patch.object(hook_module.time, "sleep") as sleep:
        done = hook.wait_for_prediction("req-1", poll_interval=5)
    assert done.outputs == ("https://cdn.test/out.mp4",)
    assert [call.args[0] for call in sleep.call_args_list] == [5, 5]
    changes = [r.getMessage() for r in caplog.records if "is " in r.getMessage() and "req-1" in r.getMessage()]
    assert [m.split(" is ")[1].split(" ")[0] for m in changes] == ["created", "processing", "completed"]


def test_wait_for_prediction_raises_the_failure_with_its_code(hook, requests_mock):
    requests_mock.get(RESULT_URL, json=prediction("failed", error="media not reachable", code=1402))
    with pytest.raises(PredictionFailedError, match=r"req-1 ended with status 'failed' \[code 1402\]"):
        hook.wait_for_prediction("req-1")


def test_wait_for_prediction_times_out_naming_the_running_prediction(hook, requests_mock):
    requests_mock.get(RESULT_URL, json=prediction("processing"))
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with (
        mock.patch.object(hook_module.time, "monotonic", side_effect=lambda: now[0]),
        mock.patch.object(hook_module.time, "sleep", side_effect=sleep),
        pytest.raises(PredictionWaitTimeoutError, match="req-1.*may still be running") as raised,
    ):
        hook.wait_for_prediction("req-1", timeout=10, poll_interval=4)
    assert raised.value.last_status == "processing"
    assert sleeps == [4, 4, 2]  # the last poll lands on the deadline
    assert requests_mock.call_count == 4


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for the hook's wait: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    fake = FakeClock()
    with (
        mock.patch.object(hook_module.time, "monotonic", side_effect=lambda: fake.now),
        mock.patch.object(hook_module.time, "sleep", side_effect=fake.sleep),
    ):
        yield fake


OUTAGE_ANSWERS = [
    {"status_code": 503, "json": envelope(None, 503, "Service Unavailable")},
    {"exc": refused()},
    {"exc": requests.ReadTimeout("read timed out")},
    {"status_code": 502, "text": "<html>Bad Gateway</html>"},
    {"text": "<html>maintenance</html>"},
    {"status_code": 429, "json": envelope(None, 429, "slow down"), "headers": {"Retry-After": "7"}},
    {"status_code": 500, "json": envelope(None, 500, "internal")},
    {"exc": requests.ConnectionError("Connection aborted: RemoteDisconnected")},
]


def test_wait_for_prediction_rides_out_an_outage_and_never_pauses_longer_than_max_poll_interval(
    hook, requests_mock, clock, caplog
):
    caplog.set_level(logging.INFO, logger=hook_module.__name__)
    outage = OUTAGE_ANSWERS * 5  # far more failures in a row than the connection's retry_limit
    requests_mock.get(RESULT_URL, [{"json": prediction("processing")}, *outage, {"json": prediction("completed")}])

    done = hook.wait_for_prediction("req-1", timeout=3600, poll_interval=2, max_poll_interval=15)

    assert done.status == "completed"
    assert requests_mock.call_count == len(outage) + 2, "one request per check: the wait owns the backoff"
    assert max(clock.sleeps) <= 15
    assert clock.sleeps[-1] == 15, "capped, yet still checking"
    failures = [
        record
        for record in caplog.records
        if "Status check of WaveSpeed prediction req-1 failed" in record.getMessage()
    ]
    assert len(failures) == len(outage), "one line per failed check"
    assert all(record.levelno == logging.WARNING for record in failures)
    assert any(f"after {len(outage)} failed status checks" in record.getMessage() for record in caplog.records)


def test_wait_for_prediction_backs_off_exponentially_with_jitter_and_honours_retry_after(hook, requests_mock, clock):
    failure = {"status_code": 503, "json": envelope(None, 503, "Service Unavailable")}
    requests_mock.get(
        RESULT_URL,
        [
            failure,
            failure,
            failure,
            {"status_code": 429, "json": envelope(None, 429, "slow"), "headers": {"Retry-After": "30"}},
            {"status_code": 429, "json": envelope(None, 429, "slow"), "headers": {"Retry-After": "600"}},
            {"json": prediction("completed")},
        ],
    )

    hook.wait_for_prediction("req-1", timeout=3600, poll_interval=4, max_poll_interval=60)

    first, second, third, retry_after, too_long = clock.sleeps
    assert 2 <= first <= 4 and 4 <= second <= 8 and 8 <= third <= 16
    assert retry_after == 30
    assert too_long == 60, "a Retry-After past max_poll_interval is capped: the outage's end is noticed in time"


def test_wait_for_prediction_through_an_outage_longer_than_its_timeout_times_out_saying_how_to_resume(
    hook, requests_mock, clock
):
    requests_mock.get(RESULT_URL, status_code=503, json=envelope(None, 503, "Service Unavailable"))

    with pytest.raises(PredictionWaitTimeoutError, match="clear this task") as raised:
        hook.wait_for_prediction(
            "req-1", timeout=300, poll_interval=5, max_poll_interval=30, next_step="clear this task"
        )

    assert raised.value.last_status == "unknown"
    assert 300 <= clock.now <= 300 + 30
    assert sum(clock.sleeps) == pytest.approx(clock.now)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status_code": 401, "json": envelope(None, 401, "Unauthorized")}, WaveSpeedAuthError),
        ({"status_code": 403, "json": envelope(None, 403, "Forbidden")}, WaveSpeedAuthError),
        ({"status_code": 404, "json": envelope(None, 404, "not found")}, WaveSpeedNotFoundError),
    ],
)
def test_wait_for_prediction_fails_at_once_on_an_answer_that_is_not_transient(
    hook, requests_mock, clock, answer, error
):
    requests_mock.get(RESULT_URL, [{"status_code": 503, "json": envelope(None, 503, "x")}, answer])

    with pytest.raises(error):
        hook.wait_for_prediction("req-1", timeout=3600)

    assert requests_mock.call_count == 2


def test_list_predictions_sends_filters_and_parses_items(hook, requests_mock):
    item = prediction("completed")["data"]
    requests_mock.post(f"{BASE}/api/v3/predictions", json=envelope({"page": 1, "items": [item]}))
    found = hook.list_predictions(model=MODEL, created_after="2026-11-23T00:00:00Z")
    assert [p.id for p in found] == ["req-1"]
    assert requests_mock.last_request.json() == {
        "page": 1,
        "page_size": 100,
        "model": MODEL,
        "created_after": "2026-11-23T00:00:00Z",
    }


# -- media -----------------------------------------------------------------------------------------


def ticket(put_url: str = "https://storage.test/put/abc?sig=s3cr3t") -> dict[str, object]:
    return envelope(
        {
            "type": "video",
            "download_url": "https://cdn.test/uploads/v.mp4",
            "filename": "v.mp4",
            "size": 11,
            "upload": {"method": "PUT", "url": put_url, "headers": {"Content-Type": "video/mp4"}},
        }
    )


def test_upload_uses_the_direct_flow_and_never_sends_the_key_to_storage(hook, requests_mock, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"hello video")
    requests_mock.post(f"{BASE}/api/v3/media/uploads", json=ticket())
    received: list[bytes] = []

    def capture(request, context) -> str:
        received.append(request.body.read())
        return ""

    put = requests_mock.put("https://storage.test/put/abc?sig=s3cr3t", text=capture)

    assert hook.upload(video) == "https://cdn.test/uploads/v.mp4"

    assert requests_mock.request_history[0].json() == {
        "filename": "v.mp4",
        "size": 11,
        "content_type": "video/mp4",
    }
    assert received == [b"hello video"]
    assert "Authorization" not in put.last_request.headers
    assert put.last_request.headers["Content-Type"] == "video/mp4"
    assert put.last_request.headers["Content-Length"] == "11"


def test_upload_put_failure_is_retried_from_the_start_of_the_file(hook, requests_mock, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"hello video")
    requests_mock.post(f"{BASE}/api/v3/media/uploads", json=ticket())
    received: list[bytes] = []

    def capture(request, context):
        received.append(request.body.read())
        context.status_code = 503 if len(received) == 1 else 200
        return ""

    requests_mock.put("https://storage.test/put/abc", text=capture)
    hook.upload(str(video))
    assert received == [b"hello video", b"hello video"]


def test_upload_of_a_stream_without_size_streams_multipart(hook, requests_mock):
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(b"audio bytes")
            self.name = "speech.wav"

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    route = requests_mock.post(
        f"{BASE}/api/v3/media/upload/binary",
        json=envelope({"type": "audio", "download_url": "https://cdn.test/a.wav", "filename": "a", "size": 11}),
    )
    assert hook.upload(Pipe()) == "https://cdn.test/a.wav"
    body = b"".join(route.last_request.body)
    assert b'name="file"; filename="speech.wav"' in body and b"audio bytes" in body
    assert route.last_request.headers["Authorization"] == f"Bearer {TEST_API_KEY}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/no/such/video.mp4", "does not exist"),
        ("https://media.test/v.mp4", "already a URL"),
    ],
)
def test_upload_rejects_bad_sources_before_sending(hook, requests_mock, source, message):
    with pytest.raises(ValueError, match=message):
        hook.upload(source)
    assert not requests_mock.called


def test_upload_rejects_a_directory(hook, requests_mock, tmp_path):
    with pytest.raises(ValueError, match="not a regular file"):
        hook.upload(tmp_path)
    assert not requests_mock.called


def test_download_writes_the_whole_file_atomically(hook, requests_mock, tmp_path):
    requests_mock.get("https://cdn.test/out.mp4", content=b"x" * 3000, headers={"Content-Length": "3000"})
    location = hook.download("https://cdn.test/out.mp4", f"{tmp_path}/dubbed/")
    assert location == str(tmp_path / "dubbed" / "out.mp4")
    assert Path(location).read_bytes() == b"x" * 3000
    assert "Authorization" not in requests_mock.last_request.headers
    assert sorted(p.name for p in (tmp_path / "dubbed").iterdir()) == ["out.mp4"]


def test_download_cut_short_is_retried_and_leaves_no_partial_file(hook, requests_mock, tmp_path):
    requests_mock.get(
        "https://cdn.test/out.mp4",
        [
            {"content": b"x" * 10, "headers": {"Content-Length": "3000"}},
            {"content": b"y" * 3000, "headers": {"Content-Length": "3000"}},
        ],
    )
    target = tmp_path / "final.mp4"
    hook.download("https://cdn.test/out.mp4", target)
    assert target.read_bytes() == b"y" * 3000
    assert [p.name for p in tmp_path.iterdir()] == ["final.mp4"]


def test_download_that_keeps_failing_leaves_nothing_behind(hook, requests_mock, tmp_path):
    requests_mock.get("https://cdn.test/out.mp4", content=b"x", headers={"Content-Length": "99"})
    with pytest.raises(WaveSpeedConnectionError, match="cut short: 1 of 99 bytes"):
        hook.download("https://cdn.test/out.mp4", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_of_an_expired_output_is_a_clear_404(hook, requests_mock, tmp_path):
    requests_mock.get("https://cdn.test/out.mp4", status_code=404, text="<Error>NoSuchKey</Error>")
    with pytest.raises(WaveSpeedNotFoundError, match="out.mp4"):
        hook.download("https://cdn.test/out.mp4", tmp_path)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("existing_directory", [True, False])
def test_download_to_object_storage_path(hook, requests_mock, tmp_path, existing_directory):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    requests_mock.get("https://cdn.test/out.mp4", content=b"video!")
    if existing_directory:
        (tmp_path / "store").mkdir()
        destination, expected = ObjectStoragePath(f"file://{tmp_path}/store"), tmp_path / "store" / "out.mp4"
    else:
        destination, expected = ObjectStoragePath(f"file://{tmp_path}/renamed.mp4"), tmp_path / "renamed.mp4"

    location = hook.download("https://cdn.test/out.mp4", destination)

    assert location == f"file://{expected}"
    assert expected.read_bytes() == b"video!"
    assert [p.name for p in expected.parent.iterdir()] == [expected.name]


# -- account ---------------------------------------------------------------------------------------


def test_test_connection_reports_balance(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 1234.5}))
    assert hook.test_connection() == (True, f"Connected to WaveSpeed at {BASE}; balance $1,234.50")


def test_test_connection_reports_a_bad_key_without_showing_it(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/v3/balance", status_code=401, json=envelope(None, 401, "Unauthorized"))
    ok, message = hook.test_connection()
    assert not ok
    assert "API Key" in message and TEST_API_KEY not in message


def test_balance_that_is_not_a_number_is_malformed(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": None}))
    with pytest.raises(WaveSpeedMalformedResponseError, match="balance"):
        hook.get_balance()


# -- the retry predicate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "read", "submit"),
    [
        (WaveSpeedConnectionError("x", request_sent=False), True, True),
        (WaveSpeedConnectionError("x", request_sent=True), True, False),
        (WaveSpeedServerError("x", http_status=500), True, False),
        (WaveSpeedServerError("x", http_status=504), True, False),
        (WaveSpeedUnavailableError("x", http_status=503), True, True),
        (WaveSpeedRateLimitError("x", http_status=429), True, True),
        (WaveSpeedNotFoundError("x", http_status=404), False, False),
        (WaveSpeedAuthError("x", http_status=401), False, False),
        (WaveSpeedAPIError("x", http_status=400), False, False),
        (WaveSpeedMalformedResponseError("x", http_status=200), True, False),
        (ValueError("x"), False, False),
    ],
)
def test_retry_predicate(error, read, submit):
    assert is_retryable_error(error, idempotent=True) is read
    assert is_retryable_error(error, idempotent=False) is submit


def test_no_log_line_carries_the_key(hook, requests_mock, caplog):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(RESULT_URL, [{"status_code": 500, "json": envelope(None, 500, "x")}, {"json": prediction()}])
    hook.get_prediction("req-1")
    assert caplog.records
    assert all(TEST_API_KEY not in r.getMessage() for r in caplog.records)
    assert TEST_API_KEY not in json.dumps(repr(hook._client_settings()))


def test_the_sync_side_does_not_import_aiohttp():
    # Workers import the hook for every lipsync task; only the triggerer needs aiohttp.
    probe = (
        "import sys\n"
        "import airflow.providers.common.compat.sdk\n"
        "before = 'aiohttp' in sys.modules\n"
        "from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook\n"
        "WaveSpeedHook('wavespeed_default').get_conn()\n"
        "print(before, 'aiohttp' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded_by_airflow, loaded_after_the_hook = output.strip().splitlines()[-1].split()
    if loaded_by_airflow == "True":
        pytest.skip("this Airflow's own imports already load aiohttp")
    assert loaded_after_the_hook == "False"
