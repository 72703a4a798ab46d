"""WaveSpeedHook's API methods against recorded, documented responses (requests_mock, aiohttp on loopback)."""

from __future__ import annotations

import io
import logging
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
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedServerError,
    WaveSpeedSubmissionUncertainError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.hooks import wavespeed as hook_module
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from tests.conftest import TEST_API_KEY
from tests.helpers.api_answers import BASE, MODEL, RESULT_URL, envelope, prediction
from tests.helpers.wavespeed_tasks import VIDEO

SUBMIT_URL = f"{BASE}/api/v3/{MODEL}"
INPUTS = {"video": "https://media.test/v.mp4", "audio": "https://media.test/a.wav", "sync_mode": "cut_off"}


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: the request never left this machine."""
    reason = urllib3.exceptions.NewConnectionError(mock.Mock(), "Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(mock.Mock(), SUBMIT_URL, reason))


@pytest.fixture
def hook(wavespeed_connection) -> WaveSpeedHook:
    wavespeed_connection(host=BASE, extra={"retry_limit": 3})
    return WaveSpeedHook()


def test_ui_field_behaviour_relabels_key_and_base_url():
    behaviour = WaveSpeedHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert "login" in behaviour["hidden_fields"]
    # Airflow 3.3.2's Test button refuses a connection without a port: the form must offer one.
    assert "port" not in behaviour["hidden_fields"]


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


@pytest.mark.parametrize("call", ["submit", "check_submission"])
def test_submit_and_its_check_reject_inputs_that_are_not_json_before_sending(hook, requests_mock, call):
    with pytest.raises(ValueError, match="inputs must be JSON"):
        getattr(hook, call)(MODEL, {"video": object()})
    with pytest.raises(ValueError, match="inputs must be a mapping"):
        getattr(hook, call)(MODEL, ["video"])
    with pytest.raises(ValueError, match="webhook="):
        getattr(hook, call)(MODEL, INPUTS, webhook="ftp://x")
    assert not requests_mock.called


def test_check_submission_accepts_what_submit_sends(hook, requests_mock):
    hook.check_submission(MODEL, INPUTS, webhook="https://hooks.example.test/done")
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

    assert hook.submit(MODEL, INPUTS).id == "req-1"

    assert requests_mock.call_count == 2


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
    assert 30 <= retry_after <= 32, "Retry-After is the least wait; the backoff (16-32 s by now) may be longer"
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


# -- prices and the model catalog ------------------------------------------------------------------


def test_get_price_posts_the_model_and_inputs(wavespeed_connection, requests_mock):
    wavespeed_connection(host=BASE)
    route = requests_mock.post(
        f"{BASE}/api/v3/model/price", json=envelope({"model_id": "sync/x", "price": 0.3, "discounted_price": 0.27})
    )

    quote = WaveSpeedHook().get_price("sync/x", {"video": VIDEO})

    assert route.last_request.json() == {"model_id": "sync/x", "inputs": {"video": VIDEO}}
    assert quote.charged == 0.27


def test_a_read_whose_data_is_garbled_is_repeated_like_a_garbled_body(wavespeed_connection, requests_mock):
    # A sound envelope around data WaveSpeed does not document (a proxy's, or damaged on the way):
    # a read is repeated, where before the task failed before paying (seen in the soak).
    wavespeed_connection(host=BASE)
    listed = [{"model_id": "sync/lipsync-1.9.0-beta", "base_price": 0.025, "api_schema": {"api_schemas": [{}]}}]
    models = requests_mock.get(f"{BASE}/api/v3/models", [{"json": envelope({"odd": 1})}, {"json": envelope(listed)}])
    balance = requests_mock.get(
        f"{BASE}/api/v3/balance", [{"json": envelope({"balance": "lots"})}, {"json": envelope({"balance": 2.5})}]
    )

    assert [entry.model for entry in WaveSpeedHook().list_models(refresh=True)] == ["sync/lipsync-1.9.0-beta"]
    assert WaveSpeedHook().get_balance() == 2.5
    assert (models.call_count, balance.call_count) == (2, 2)


def test_the_catalog_is_fetched_once_and_refreshed_once_for_a_model_it_lacks(wavespeed_connection, requests_mock):
    wavespeed_connection(host=BASE)
    listed = [{"model_id": "sync/lipsync-1.9.0-beta", "base_price": 0.025, "api_schema": {"api_schemas": [{}]}}]
    route = requests_mock.get(f"{BASE}/api/v3/models", json=envelope(listed))
    hook = WaveSpeedHook()

    entry = hook.get_catalog_model("sync/lipsync-1.9.0-beta")
    assert entry is not None and entry.base_price == 0.025
    assert WaveSpeedHook().get_catalog_model("sync/lipsync-1.9.0-beta") is not None
    assert route.call_count == 1, "cached for the process"
    assert hook.get_catalog_model("sync/newer-model") is None
    assert route.call_count == 2, "a model missing from the cached copy refreshes it once"
