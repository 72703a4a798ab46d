"""The transport under WaveSpeedHook: settings from the connection, the retry policy, both sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from unittest import mock

import pendulum
import pytest

from airflow_provider_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.hooks import transport
from airflow_provider_wavespeed.hooks.transport import is_retryable_error
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_provider_wavespeed.models import parse_envelope
from tests.conftest import TEST_API_KEY
from tests.helpers.api_answers import BASE, RESULT_URL, envelope, prediction
from tests.scripted_api import Reply, ScriptedAPI


@pytest.fixture
def hook(wavespeed_connection) -> WaveSpeedHook:
    wavespeed_connection(host=BASE, extra={"retry_limit": 3})
    return WaveSpeedHook()


# -- settings from the connection ------------------------------------------------------------------


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
    caplog.set_level(logging.INFO, logger=transport.__name__)
    monkeypatch.setattr(transport, "_logged_sources", set())
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-123456")
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://127.0.0.1:1234")
    requests_mock.get("http://127.0.0.1:1234/api/v3/balance", json=envelope({"balance": 1}))
    with mock.patch.object(transport, "mask_secret") as mask:
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


def test_the_hook_logs_where_its_key_and_base_url_came_from_never_the_key(hook, requests_mock, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=transport.__name__)
    monkeypatch.setattr(transport, "_logged_sources", set())
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 1}))

    hook.get_balance()

    (source,) = [record.getMessage() for record in caplog.records if "API key from" in record.getMessage()]
    assert "the password (API Key) of the WaveSpeed connection 'wavespeed_default'" in source
    assert f"API {BASE} from the host of the WaveSpeed connection 'wavespeed_default'" in source
    assert TEST_API_KEY not in source


def test_the_sources_of_a_connection_are_logged_once_per_process_however_many_hooks_resolve_them(
    wavespeed_connection, requests_mock, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger=transport.__name__)
    monkeypatch.setattr(transport, "_logged_sources", set())
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 1}))
    requests_mock.get("http://127.0.0.1:1234/api/v3/balance", json=envelope({"balance": 1}))
    wavespeed_connection()

    for _ in range(3):  # as a triggerer resolves the connection once per trigger
        WaveSpeedHook().get_balance()
    wavespeed_connection(host="http://127.0.0.1:1234")  # the connection edited: its new API is news
    WaveSpeedHook().get_balance()

    sources = [record.getMessage() for record in caplog.records if "API key from" in record.getMessage()]
    assert len(sources) == 2
    assert f"API {BASE} from" in sources[0]
    assert "API http://127.0.0.1:1234 from" in sources[1]


def test_missing_connection_and_variable_explains_both_ways():
    with pytest.raises(WaveSpeedError, match="No Airflow connection 'wavespeed_default'.*WAVESPEED_API_KEY"):
        WaveSpeedHook().base_url  # noqa: B018


def test_key_is_the_connection_password_and_nothing_else(
    monkeypatch, requests_mock, connection_with_decoys, decoy_environment
):
    connection_with_decoys(password=TEST_API_KEY)
    monkeypatch.setenv("WAVESPEED_API_KEY", "decoy-sdk-variable")
    requests_mock.get(f"{BASE}/api/v3/balance", json=envelope({"balance": 1}))

    WaveSpeedHook().get_balance()

    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {TEST_API_KEY}"


def test_an_existing_connection_without_a_password_never_falls_back(monkeypatch, requests_mock, connection_with_decoys):
    # Falling back here would send a key the connection's owner never chose.
    connection_with_decoys(password="")
    monkeypatch.setenv("WAVESPEED_API_KEY", "decoy-sdk-variable")

    with pytest.raises(WaveSpeedError, match="'wavespeed_default' has no API key: set its password"):
        WaveSpeedHook().get_balance()
    assert not requests_mock.called


def test_missing_connection_reads_only_the_sdk_environment_variable(requests_mock, decoy_environment):

    with pytest.raises(WaveSpeedError, match="No Airflow connection 'wavespeed_default' and no WAVESPEED_API_KEY"):
        WaveSpeedHook().get_balance()
    assert not requests_mock.called


def test_key_is_registered_with_the_secret_masker(hook):
    with mock.patch.object(transport, "mask_secret") as mask:
        hook.base_url  # noqa: B018
    mask.assert_called_once_with(TEST_API_KEY)


def test_hook_construction_does_no_lookup():
    with mock.patch.object(WaveSpeedHook, "get_connection") as get_connection:
        WaveSpeedHook("anything")
    get_connection.assert_not_called()


# -- the retry policy ------------------------------------------------------------------------------


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


# -- which failures count as transient, for waits and for submits ----------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error", "read", "submit"),
    [
        (503, b'{"code": 503, "message": "Service Unavailable"}', WaveSpeedUnavailableError, True, True),
        (503, b"<html>503</html>", WaveSpeedUnavailableError, True, True),
        (200, b'{"code": 5003, "message": "Service Unavailable"}', WaveSpeedUnavailableError, True, True),
        (429, b'{"code": 429, "message": "rate"}', WaveSpeedRateLimitError, True, True),
        (500, b'{"code": 500, "message": "internal"}', WaveSpeedServerError, True, False),
        (502, b"<html>Bad Gateway</html>", WaveSpeedServerError, True, False),
        (504, b"<html>Gateway Time-out</html>", WaveSpeedServerError, True, False),
        (200, b"<html>maintenance</html>", WaveSpeedMalformedResponseError, True, False),
        (401, b'{"code": 401, "message": "Unauthorized"}', WaveSpeedAuthError, False, False),
        (403, b'{"code": 403, "message": "Forbidden"}', WaveSpeedAuthError, False, False),
        (404, b'{"code": 404, "message": "not found"}', WaveSpeedNotFoundError, False, False),
        (400, b'{"code": 400, "message": "bad"}', WaveSpeedAPIError, False, False),
    ],
)
def test_answers_are_classified_for_waits_and_for_submits(status, body, error, read, submit):
    with pytest.raises(error) as raised:
        parse_envelope(http_status=status, body=body, url="https://api.wavespeed.test/x")
    assert type(raised.value) is error
    assert is_retryable_error(raised.value) is read
    assert is_retryable_error(raised.value, idempotent=False) is submit


@pytest.mark.parametrize(("sent", "submit"), [(False, True), (True, False)])
def test_a_connection_failure_is_transient_and_a_submit_repeats_only_if_it_never_went_out(sent, submit):
    error = WaveSpeedConnectionError("refused", request_sent=sent)
    assert is_retryable_error(error) is True
    assert is_retryable_error(error, idempotent=False) is submit


# -- the async side ---------------------------------------------------------------------------------


RESULT_PATH = "/api/v3/predictions/req-1/result"


@pytest.fixture
async def api() -> AsyncIterator[ScriptedAPI]:
    server = ScriptedAPI()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def async_hook(wavespeed_connection, api) -> AsyncIterator[WaveSpeedHook]:
    wavespeed_connection(host=api.base_url, extra={"retry_limit": 2, "read_timeout": 0.5})
    async with WaveSpeedHook() as hook:
        yield hook


async def test_aget_prediction_parses_the_prediction_and_authenticates(async_hook, api):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")))

    found = await async_hook.aget_prediction("req-1")

    assert found.status == "processing"
    assert api.requests[0].headers["Authorization"] == f"Bearer {TEST_API_KEY}"


async def test_connection_is_fetched_with_the_async_lookup_never_a_sync_one_on_the_event_loop(async_hook, api):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction()))
    event_loop_thread = threading.get_ident()
    sync_lookup = WaveSpeedHook.get_connection

    def off_the_event_loop(*args, **kwargs):
        # Where Airflow has no usable async lookup (2.11, 3.0) compat runs the sync one in a thread.
        assert threading.get_ident() != event_loop_thread, "sync connection lookup on the event loop"
        return sync_lookup(*args, **kwargs)

    with (
        mock.patch.object(WaveSpeedHook, "get_connection", side_effect=off_the_event_loop),
        mock.patch.object(transport, "get_async_connection", wraps=transport.get_async_connection) as lookup,
    ):
        await async_hook.aget_prediction("req-1")
        await async_hook.aget_prediction("req-1")
    lookup.assert_awaited_once()


@pytest.mark.parametrize(
    "failure",
    [
        Reply(status=503, json_body=envelope(None, 503, "busy"), headers={"Retry-After": "0"}),
        Reply(status=429, json_body=envelope(None, 429, "rate")),
        Reply(status=502, text="<html>Bad Gateway</html>"),
        Reply(drop_connection=True),
        Reply(delay=1.0, json_body=prediction()),  # beyond the 0.5 s read timeout
        Reply(text='{"code": 200, "data": {"id": "re'),
    ],
    ids=["503", "429", "html-502", "dropped", "read-timeout", "truncated"],
)
async def test_transient_failures_are_retried(async_hook, api, failure):
    api.add("GET", RESULT_PATH, failure, Reply(json_body=prediction("completed")))
    assert (await async_hook.aget_prediction("req-1")).is_completed
    assert api.count("GET", RESULT_PATH) == 2


async def test_persistent_server_errors_give_up_after_the_retry_limit(async_hook, api):
    api.add("GET", RESULT_PATH, Reply(status=500, json_body=envelope(None, 500, "down")))
    with pytest.raises(WaveSpeedServerError, match="HTTP 500"):
        await async_hook.aget_prediction("req-1")
    assert api.count("GET", RESULT_PATH) == 3


async def test_auth_error_is_not_retried_and_names_the_connection(async_hook, api):
    api.add("GET", RESULT_PATH, Reply(status=401, json_body=envelope(None, 401, "Unauthorized")))
    with pytest.raises(WaveSpeedAuthError, match="connection 'wavespeed_default'") as raised:
        await async_hook.aget_prediction("req-1")
    assert api.count("GET", RESULT_PATH) == 1
    assert TEST_API_KEY not in str(raised.value)


async def test_unknown_prediction_names_the_request_id(async_hook, api):
    api.add("GET", RESULT_PATH, Reply(status=404, json_body=envelope(None, 404, "not found")))
    with pytest.raises(WaveSpeedNotFoundError, match="no prediction 'req-1'"):
        await async_hook.aget_prediction("req-1")


async def test_missing_connection_takes_the_key_from_the_sdk_environment_variable(api, monkeypatch, decoy_environment):
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-123456")
    monkeypatch.setenv("WAVESPEED_BASE_URL", api.base_url)
    api.add("GET", RESULT_PATH, Reply(json_body=prediction()))

    async with WaveSpeedHook() as hook:
        await hook.aget_prediction("req-1")

    assert api.requests[0].headers["Authorization"] == "Bearer env-key-123456"


async def test_the_async_side_never_falls_back_from_a_connection_without_a_password(
    api, monkeypatch, connection_with_decoys
):
    connection_with_decoys(password="")
    monkeypatch.setenv("WAVESPEED_API_KEY", "decoy-sdk-variable")
    monkeypatch.setenv("WAVESPEED_BASE_URL", api.base_url)

    async with WaveSpeedHook() as hook:
        with pytest.raises(WaveSpeedError, match="'wavespeed_default' has no API key"):
            await hook.aget_prediction("req-1")
    assert api.requests == []


async def test_connect_failure_is_a_connection_error_that_was_not_sent(wavespeed_connection, unused_tcp_port):
    wavespeed_connection(host=f"http://127.0.0.1:{unused_tcp_port}", extra={"retry_limit": 1})
    async with WaveSpeedHook() as hook:
        with pytest.raises(WaveSpeedConnectionError, match="could not connect") as raised:
            await hook.aget_prediction("req-1")
    assert raised.value.request_sent is False


async def test_without_retries_a_failure_is_raised_after_one_attempt(wavespeed_connection, api):
    wavespeed_connection(host=api.base_url, extra={"retry_limit": 0})
    api.add("GET", RESULT_PATH, Reply(status=503, json_body=envelope(None, 503, "busy")))
    async with WaveSpeedHook() as hook:
        with pytest.raises(WaveSpeedServerError, match="HTTP 503"):
            await hook.aget_prediction("req-1")
    assert api.count("GET", RESULT_PATH) == 1


async def test_without_retries_a_poll_skips_the_retry_machinery(wavespeed_connection, api):
    # The trigger polls with retry_limit=0: a tenacity wrapper per poll would only add garbage
    # for the triggerer's collector (benchmarks/triggerer_scale.py measures what that costs).
    wavespeed_connection(host=api.base_url, extra={"retry_limit": 0})
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")))
    with mock.patch.object(transport, "AsyncRetrying", side_effect=AssertionError("wrapped")):
        async with WaveSpeedHook() as hook:
            assert (await hook.aget_prediction("req-1")).status == "processing"


# -- the shared async session ----------------------------------------------------------------------


def session_of(hook: WaveSpeedHook):
    assert hook._shared_session is not None, "the hook is not entered"
    return hook._shared_session.session


async def test_the_async_methods_outside_async_with_say_how_to_use_them(wavespeed_connection):
    with pytest.raises(RuntimeError, match="inside `async with hook:`"):
        await WaveSpeedHook().aget_prediction("req-1")


async def test_every_hook_entered_on_a_loop_shares_one_session():
    async with WaveSpeedHook() as first, WaveSpeedHook("other") as second:
        assert session_of(first) is session_of(second)
        shared = session_of(first)
    assert shared.closed, "the last hook to leave closes it"
    async with WaveSpeedHook() as again:
        assert session_of(again) is not shared and not session_of(again).closed


async def test_the_session_stays_open_until_its_last_user_leaves_in_any_order():
    first, second = WaveSpeedHook(), WaveSpeedHook()
    await first.__aenter__()
    await second.__aenter__()
    shared = session_of(first)
    await first.__aexit__(None, None, None)
    assert not shared.closed, "closed under a hook still inside its block"
    await second.__aexit__(None, None, None)
    assert shared.closed


async def test_a_hook_entered_while_the_last_user_closes_the_session_gets_an_open_one():
    leaving, arriving = WaveSpeedHook(), WaveSpeedHook()
    await leaving.__aenter__()
    closing = session_of(leaving)
    # The leaving hook's close is awaited first; the arriving one enters while it is in progress.
    await asyncio.gather(leaving.__aexit__(None, None, None), arriving.__aenter__())
    assert closing.closed
    assert session_of(arriving) is not closing and not session_of(arriving).closed
    await arriving.__aexit__(None, None, None)


async def test_a_hook_entered_twice_keeps_its_session_until_it_leaves_both_blocks():
    hook = WaveSpeedHook()
    async with hook:
        async with hook:
            shared = session_of(hook)
        assert not shared.closed
    assert shared.closed


def test_each_event_loop_gets_its_own_session():
    async def entered_session():
        async with WaveSpeedHook() as hook:
            return session_of(hook)

    assert asyncio.run(entered_session()) is not asyncio.run(entered_session())
