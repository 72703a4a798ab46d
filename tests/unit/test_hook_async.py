"""WaveSpeedHook's async side (the triggerer's) against recorded responses (aioresponses)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from unittest import mock

import aiohttp
import pytest

from airflow_provider_wavespeed.exceptions import (
    WaveSpeedAuthError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedNotFoundError,
    WaveSpeedServerError,
)
from airflow_provider_wavespeed.hooks import wavespeed as hook_module
from airflow_provider_wavespeed.hooks.wavespeed import (
    WaveSpeedHook,
    close_shared_client_session,
    shared_client_session,
)
from tests.conftest import TEST_API_KEY
from tests.scripted_api import Reply, ScriptedAPI
from tests.unit.test_hook import DECOY_ENVIRONMENT, connection_with_decoys, envelope, prediction

RESULT_PATH = "/api/v3/predictions/req-1/result"


@pytest.fixture
async def api() -> AsyncIterator[ScriptedAPI]:
    server = ScriptedAPI()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def hook(wavespeed_connection, api) -> AsyncIterator[WaveSpeedHook]:
    wavespeed_connection(host=api.base_url, extra={"retry_limit": 2, "read_timeout": 0.5})
    yield WaveSpeedHook()
    await close_shared_client_session()


async def test_aget_prediction_parses_the_prediction_and_authenticates(hook, api):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")))

    found = await hook.aget_prediction("req-1")

    assert found.status == "processing"
    assert api.requests[0].headers["Authorization"] == f"Bearer {TEST_API_KEY}"


async def test_connection_is_fetched_with_the_async_lookup_never_a_sync_one_on_the_event_loop(hook, api):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction()))
    event_loop_thread = threading.get_ident()
    sync_lookup = WaveSpeedHook.get_connection

    def off_the_event_loop(*args, **kwargs):
        # Where Airflow has no usable async lookup (2.11, 3.0) compat runs the sync one in a thread.
        assert threading.get_ident() != event_loop_thread, "sync connection lookup on the event loop"
        return sync_lookup(*args, **kwargs)

    with (
        mock.patch.object(WaveSpeedHook, "get_connection", side_effect=off_the_event_loop),
        mock.patch.object(hook_module, "get_async_connection", wraps=hook_module.get_async_connection) as lookup,
    ):
        await hook.aget_prediction("req-1")
        await hook.aget_prediction("req-1")
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
async def test_transient_failures_are_retried(hook, api, failure):
    api.add("GET", RESULT_PATH, failure, Reply(json_body=prediction("completed")))
    assert (await hook.aget_prediction("req-1")).is_completed
    assert api.count("GET", RESULT_PATH) == 2


async def test_persistent_server_errors_give_up_after_the_retry_limit(hook, api):
    api.add("GET", RESULT_PATH, Reply(status=500, json_body=envelope(None, 500, "down")))
    with pytest.raises(WaveSpeedServerError, match="HTTP 500"):
        await hook.aget_prediction("req-1")
    assert api.count("GET", RESULT_PATH) == 3


async def test_auth_error_is_not_retried_and_names_the_connection(hook, api):
    api.add("GET", RESULT_PATH, Reply(status=401, json_body=envelope(None, 401, "Unauthorized")))
    with pytest.raises(WaveSpeedAuthError, match="connection 'wavespeed_default'") as raised:
        await hook.aget_prediction("req-1")
    assert api.count("GET", RESULT_PATH) == 1
    assert TEST_API_KEY not in str(raised.value)


async def test_unknown_prediction_names_the_request_id(hook, api):
    api.add("GET", RESULT_PATH, Reply(status=404, json_body=envelope(None, 404, "not found")))
    with pytest.raises(WaveSpeedNotFoundError, match="no prediction 'req-1'"):
        await hook.aget_prediction("req-1")


async def test_missing_connection_takes_the_key_from_the_sdk_environment_variable(api, monkeypatch):
    for name, value in DECOY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-123456")
    monkeypatch.setenv("WAVESPEED_BASE_URL", api.base_url)
    api.add("GET", RESULT_PATH, Reply(json_body=prediction()))

    await WaveSpeedHook().aget_prediction("req-1")

    assert api.requests[0].headers["Authorization"] == "Bearer env-key-123456"
    await close_shared_client_session()


async def test_an_existing_connection_without_a_password_never_falls_back(api, monkeypatch):
    connection_with_decoys(monkeypatch, password="")
    monkeypatch.setenv("WAVESPEED_API_KEY", "decoy-sdk-variable")
    monkeypatch.setenv("WAVESPEED_BASE_URL", api.base_url)

    with pytest.raises(WaveSpeedError, match="'wavespeed_default' has no API key"):
        await WaveSpeedHook().aget_prediction("req-1")
    assert api.requests == []


async def test_connect_failure_is_a_connection_error_that_was_not_sent(wavespeed_connection, unused_tcp_port):
    wavespeed_connection(host=f"http://127.0.0.1:{unused_tcp_port}", extra={"retry_limit": 1})
    with pytest.raises(WaveSpeedConnectionError, match="could not connect") as raised:
        await WaveSpeedHook().aget_prediction("req-1")
    assert raised.value.request_sent is False
    await close_shared_client_session()


async def test_every_hook_on_a_loop_shares_one_session(wavespeed_connection):
    first = shared_client_session()
    assert shared_client_session() is first
    await close_shared_client_session()
    assert first.closed
    replacement = shared_client_session()
    assert replacement is not first
    await close_shared_client_session()


def test_each_event_loop_gets_its_own_session():
    async def session_and_close() -> aiohttp.ClientSession:
        session = shared_client_session()
        await close_shared_client_session()
        return session

    assert asyncio.run(session_and_close()) is not asyncio.run(session_and_close())


async def test_without_retries_a_failure_is_raised_after_one_attempt(wavespeed_connection, api):
    wavespeed_connection(host=api.base_url, extra={"retry_limit": 0})
    api.add("GET", RESULT_PATH, Reply(status=503, json_body=envelope(None, 503, "busy")))
    with pytest.raises(WaveSpeedServerError, match="HTTP 503"):
        await WaveSpeedHook().aget_prediction("req-1")
    assert api.count("GET", RESULT_PATH) == 1
    await close_shared_client_session()


async def test_without_retries_a_poll_skips_the_retry_machinery(wavespeed_connection, api):
    # The trigger polls with retry_limit=0: a tenacity wrapper per poll would only add garbage
    # for the triggerer's collector (benchmarks/triggerer_scale.py measures what that costs).
    wavespeed_connection(host=api.base_url, extra={"retry_limit": 0})
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")))
    with mock.patch.object(hook_module, "AsyncRetrying", side_effect=AssertionError("wrapped")):
        assert (await WaveSpeedHook().aget_prediction("req-1")).status == "processing"
    await close_shared_client_session()
