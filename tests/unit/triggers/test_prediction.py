"""PredictionTrigger, driven the way the triggerer drives it, against a scripted loopback API."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any
from unittest import mock

import pytest

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionWaitTimeoutError,
    WaveSpeedError,
)
from airflow_provider_wavespeed.triggers import prediction as trigger_module
from airflow_provider_wavespeed.triggers.prediction import PredictionTrigger, prediction_from_event
from tests.conftest import TEST_API_KEY
from tests.helpers.api_answers import envelope, prediction
from tests.helpers.imports import modules_newly_imported
from tests.scripted_api import Reply, ScriptedAPI

RESULT_PATH = "/api/v3/predictions/req-1/result"
CLASSPATH = "airflow_provider_wavespeed.triggers.prediction.PredictionTrigger"


@pytest.fixture
async def api(wavespeed_connection):
    server = ScriptedAPI()
    await server.start()
    wavespeed_connection(host=server.base_url, extra={"read_timeout": 0.5})
    yield server
    await server.close()


@pytest.fixture
def trigger_log(capsys, caplog):
    """The trigger's log lines so far.

    Airflow 2.11 and 3.0 log a trigger through ``logging`` (which may also echo to stdout), Airflow 3.3
    through structlog straight to stdout.
    """
    caplog.set_level(logging.INFO, logger=CLASSPATH)  # whatever logging config an earlier test left

    def lines() -> list[str]:
        records = [record.getMessage() for record in caplog.records if record.name.startswith(CLASSPATH)]
        return records or capsys.readouterr().out.splitlines()

    return lines


class Clock:
    """The trigger's wall clock, advanced only by its own sleeps."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(trigger_module, "time", fake)
    return fake


@pytest.fixture
def sleeps(monkeypatch, clock):
    """Make the trigger's sleeps instant (they advance its clock), and record them."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)
        clock.now += seconds
        await real_sleep(0)

    monkeypatch.setattr(trigger_module.asyncio, "sleep", fake_sleep)
    return recorded


def make_trigger(**overrides) -> PredictionTrigger:
    kwargs: dict[str, Any] = {
        "request_id": "req-1",
        "end_time": time.time() + 3600,
        "submitted_at": time.time(),
        "poll_interval": 5.0,
        "max_poll_interval": 60.0,
    }
    kwargs.update(overrides)
    return PredictionTrigger(**kwargs)


async def only_event(trigger: PredictionTrigger) -> dict:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    return events[0]


def test_serialize_round_trips_exactly_with_plain_data_only():
    trigger = make_trigger(wavespeed_conn_id="other")
    classpath, kwargs = trigger.serialize()

    assert classpath == CLASSPATH
    rebuilt = PredictionTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert all(isinstance(value, (str, int, float)) for value in kwargs.values())
    assert TEST_API_KEY not in repr(kwargs)


def test_bad_intervals_are_rejected_naming_the_argument():
    with pytest.raises(ValueError, match="max_poll_interval=1"):
        make_trigger(poll_interval=5, max_poll_interval=1)


async def test_completed_prediction_yields_one_success_event(api, sleeps, trigger_log):
    api.add(
        "GET",
        RESULT_PATH,
        Reply(json_body=prediction("created")),
        Reply(json_body=prediction("processing")),
        Reply(json_body=prediction("processing")),
        Reply(json_body=prediction("completed")),
    )

    event = await only_event(make_trigger())

    assert event["status"] == "success"
    assert event["request_id"] == "req-1"
    assert prediction_from_event(event).outputs == ("https://cdn.test/out.mp4",)
    assert sleeps == [5.0, 5.0, 5.0]
    # The triggerer routes the trigger's log to the task's log.
    changes = [line for line in trigger_log() if "WaveSpeed prediction req-1:" in line]
    assert [c.split("req-1: ")[1].split(" after")[0] for c in changes] == [
        "submitted -> created",
        "created -> processing",
        "processing -> completed",
    ]


@pytest.mark.parametrize("status", ["failed", "cancelled", "timeout", "deleted"])
async def test_every_terminal_failure_yields_a_failed_event_carrying_the_code(api, sleeps, status):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction(status, error="media not reachable", code=1402)))

    event = await only_event(make_trigger())

    assert event["status"] == "failed"
    assert event["request_id"] == "req-1"
    with pytest.raises(PredictionFailedError, match=r"\[code 1402\]"):
        prediction_from_event(event)


async def test_poll_interval_backs_off_for_long_predictions(api, sleeps):
    trigger = make_trigger(submitted_at=time.time() - 400, end_time=time.time() + 3600)
    api.add(
        "GET",
        RESULT_PATH,
        Reply(json_body=prediction("processing")),
        Reply(json_body=prediction("completed")),
    )

    await only_event(trigger)

    assert 39 <= sleeps[0] <= 41  # a tenth of the 400 s already waited


async def test_deadline_yields_a_timeout_event_after_a_last_check(api, sleeps, clock):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")))
    end_time = clock.now + 2

    event = await only_event(make_trigger(end_time=end_time, submitted_at=clock.now))

    assert event["status"] == "timeout"
    assert event["last_status"] == "processing"
    assert sleeps[0] <= 2
    with pytest.raises(PredictionWaitTimeoutError, match="req-1"):
        prediction_from_event(event)


async def test_a_past_deadline_still_checks_once(api, sleeps):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))
    event = await only_event(make_trigger(end_time=time.time() - 10))
    assert event["status"] == "success"


async def test_transient_failures_are_tolerated_honouring_retry_after(api, sleeps):
    api.add(
        "GET",
        RESULT_PATH,
        Reply(status=503, json_body=envelope(None, 503, "busy")),
        Reply(status=429, json_body=envelope(None, 429, "rate"), headers={"Retry-After": "30"}),
        Reply(status=500, json_body=envelope(None, 500, "x")),
        Reply(json_body=prediction("completed")),
    )

    event = await only_event(make_trigger())

    assert event["status"] == "success"
    backoff, retry_after, second_backoff = sleeps
    assert 2.5 <= backoff <= 5.0 and retry_after == 30.0 and 10.0 <= second_backoff <= 20.0


def outage_replies(count: int) -> list[Reply]:
    kinds = [
        Reply(status=503, json_body=envelope(None, 503, "Service Unavailable")),
        Reply(status=502, text="<html>Bad Gateway</html>"),
        Reply(text="<html>maintenance</html>"),  # a 200 that is not the envelope
        Reply(drop_connection=True),
        Reply(status=504, text="<html>Gateway Time-out</html>"),
        Reply(status=429, json_body=envelope(None, 429, "rate"), headers={"Retry-After": "900"}),
    ]
    return [kinds[n % len(kinds)] for n in range(count)]


async def test_an_outage_of_any_length_is_ridden_out_never_pausing_longer_than_max_poll_interval(
    api, sleeps, trigger_log
):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")), *outage_replies(60))
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))

    event = await only_event(make_trigger(poll_interval=5, max_poll_interval=20))

    assert event["status"] == "success"
    assert api.count("GET", RESULT_PATH) == 62
    assert max(sleeps) <= 20, "a completion after the outage is noticed within one max_poll_interval"
    assert sleeps[-1] == 20
    lines = trigger_log()
    failed = [line for line in lines if "Status check of WaveSpeed prediction req-1 failed" in line]
    # aiohttp itself repeats a GET once when a pooled connection turns out dropped, so a drop and
    # the answer after it may make one failed check.
    assert 50 <= len(failed) == len(sleeps) - 1, "one line per failed check, each followed by one pause"
    assert any(f"answered again after {len(failed)} failed status checks" in line for line in lines)


async def test_an_outage_that_outlasts_the_deadline_ends_in_a_timeout_saying_how_to_resume(api, sleeps, clock):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")), Reply(status=503, text="down"))
    end_time = clock.now + 600

    event = await only_event(make_trigger(end_time=end_time, poll_interval=5, max_poll_interval=60))

    assert event["status"] == "timeout" and event["last_status"] == "processing"
    assert clock.now == pytest.approx(end_time)
    with pytest.raises(PredictionWaitTimeoutError) as raised:
        prediction_from_event(event)
    assert "retry or clear this task and it resumes that prediction without paying again" in str(raised.value)
    assert "PredictionSensor" not in str(raised.value)


async def test_refused_connections_are_ridden_out_until_the_deadline(wavespeed_connection, sleeps, clock):
    wavespeed_connection(host=f"http://127.0.0.1:{closed_port()}")
    end_time = clock.now + 300

    event = await only_event(make_trigger(end_time=end_time, poll_interval=5, max_poll_interval=30))

    assert event["status"] == "timeout" and event["last_status"] == "unknown"
    assert len(sleeps) >= 10 and max(sleeps) <= 30


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unknown_id_ends_the_wait_at_once_without_promising_a_resume(api, sleeps):
    api.add("GET", RESULT_PATH, Reply(status=404, json_body=envelope(None, 404, "not found")))

    event = await only_event(make_trigger())

    assert event["status"] == "error" and "has no prediction 'req-1'" in event["message"]
    assert "without paying again" not in event["message"]
    assert api.count("GET", RESULT_PATH) == 1


async def test_a_bad_key_ends_the_wait_at_once(api, sleeps):
    api.add("GET", RESULT_PATH, Reply(status=401, json_body=envelope(None, 401, "Unauthorized")))

    event = await only_event(make_trigger())

    assert event["status"] == "error"
    assert "API Key" in event["message"]
    assert "retry or clear this task and it resumes that prediction without paying again" in event["message"]
    assert TEST_API_KEY not in event["message"]
    assert api.count("GET", RESULT_PATH) == 1


async def test_a_success_after_failures_restarts_the_backoff(api, sleeps):
    api.add(
        "GET",
        RESULT_PATH,
        *outage_replies(4)[:3],
        Reply(json_body=prediction("processing")),
        Reply(status=500, json_body=envelope(None, 500, "x")),
        Reply(json_body=prediction("completed")),
    )
    event = await only_event(make_trigger(poll_interval=5, max_poll_interval=60))
    assert event["status"] == "success"
    assert 2.5 <= sleeps[4] <= 5.0, "the first failure after an answer backs off from poll_interval again"


async def test_cancellation_propagates_and_is_not_an_event(api):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")))
    trigger = make_trigger(poll_interval=30, max_poll_interval=30)
    events: list = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event)

    task = asyncio.create_task(consume())
    while api.count("GET", RESULT_PATH) == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == []


async def test_an_unexpected_bug_becomes_an_error_event_not_a_dead_trigger(api, sleeps):
    with mock.patch(
        "airflow_provider_wavespeed.hooks.wavespeed.WaveSpeedHook.aget_prediction",
        side_effect=KeyError("boom"),
    ):
        event = await only_event(make_trigger())
    assert event["status"] == "error"
    assert "boom" in event["message"]


async def test_on_kill_names_the_prediction_that_may_still_run(trigger_log):
    await make_trigger().on_kill()
    assert any("req-1 is paid for and may still be running" in line for line in trigger_log())


@pytest.mark.parametrize(
    "event",
    [None, {}, {"status": "weird", "request_id": "x"}, {"status": "success"}, "success"],
)
def test_unexpected_events_raise_instead_of_silently_succeeding(event):
    with pytest.raises(WaveSpeedError, match="Unexpected event"):
        prediction_from_event(event)


def test_success_event_for_a_prediction_that_is_not_completed_raises():
    event = {"status": "success", "request_id": "req-1", "prediction": prediction("processing")["data"]}
    with pytest.raises(WaveSpeedError, match="bug"):
        prediction_from_event(event)


async def test_triggers_share_one_session_which_the_last_one_closes(api, sleeps):
    from airflow_provider_wavespeed.hooks import transport

    api.add("GET", RESULT_PATH, Reply(json_body=prediction("processing")), Reply(json_body=prediction("completed")))
    api.add("GET", "/api/v3/predictions/req-2/result", Reply(json_body=prediction("completed", id="req-2")))
    joined: list = []
    join = transport._join_shared_session

    def spy():
        shared = join()
        joined.append(shared.session)
        return shared

    with mock.patch.object(transport, "_join_shared_session", side_effect=spy):
        first, second = await asyncio.gather(only_event(make_trigger()), only_event(make_trigger(request_id="req-2")))

    assert (first["status"], second["status"]) == ("success", "success")
    assert len(joined) == 2 and joined[0] is joined[1]
    assert joined[0].closed  # by the last trigger to finish


def test_the_trigger_module_imports_neither_the_hook_nor_aiohttp():
    # The triggerer imports it on the event loop when it loads the trigger; the heavy imports come in
    # run(), in a thread.
    loaded = modules_newly_imported(
        "import airflow.triggers.base",
        "import airflow_provider_wavespeed.triggers.prediction",
        ["aiohttp", "requests", "airflow_provider_wavespeed.hooks.wavespeed"],
    )
    assert loaded == []


async def test_the_first_trigger_imports_the_hook_in_a_thread_not_on_the_event_loop(api, sleeps, monkeypatch):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))
    monkeypatch.setattr(trigger_module, "_hook_class", None)
    loop_thread = threading.get_ident()
    importing_threads: list[int] = []
    import_hook_class = trigger_module._import_hook_class

    def spy():
        importing_threads.append(threading.get_ident())
        return import_hook_class()

    with mock.patch.object(trigger_module, "_import_hook_class", side_effect=spy):
        assert (await only_event(make_trigger()))["status"] == "success"
        assert (await only_event(make_trigger()))["status"] == "success"

    (importing_thread,) = importing_threads  # once per process
    assert importing_thread != loop_thread


class HeldImport:
    """The hook's import, held in its thread until released; records each thread that runs it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.released = threading.Event()
        self.threads: list[int] = []
        self._import_hook_class = trigger_module._import_hook_class

    def __call__(self) -> type:
        self.threads.append(threading.get_ident())
        self.started.set()
        self.released.wait(timeout=10)
        return self._import_hook_class()


async def test_triggers_admitted_during_the_import_share_its_thread(api, sleeps, monkeypatch):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))
    monkeypatch.setattr(trigger_module, "_hook_class", None)
    held_import = HeldImport()

    with mock.patch.object(trigger_module, "_import_hook_class", side_effect=held_import):
        waits = [asyncio.ensure_future(only_event(make_trigger())) for _ in range(20)]
        await asyncio.to_thread(held_import.started.wait, 10)
        await asyncio.sleep(0)
        waits[5].cancel()  # a trigger cancelled while it waits for the import leaves the others waiting
        held_import.released.set()
        results = await asyncio.gather(*waits, return_exceptions=True)

    assert len(held_import.threads) == 1
    assert isinstance(results[5], asyncio.CancelledError)
    others = results[:5] + results[6:]
    assert [event["status"] if isinstance(event, dict) else event for event in others] == ["success"] * 19


async def test_when_the_importing_trigger_is_cancelled_the_next_one_imports(api, sleeps, monkeypatch):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))
    monkeypatch.setattr(trigger_module, "_hook_class", None)
    held_import = HeldImport()

    with mock.patch.object(trigger_module, "_import_hook_class", side_effect=held_import):
        waits = [asyncio.ensure_future(only_event(make_trigger())) for _ in range(5)]
        await asyncio.to_thread(held_import.started.wait, 10)
        waits[0].cancel()  # the trigger whose thread imports
        await asyncio.sleep(0.05)
        held_import.released.set()
        results = await asyncio.gather(*waits, return_exceptions=True)

    assert len(held_import.threads) == 2
    assert isinstance(results[0], asyncio.CancelledError)
    assert [event["status"] if isinstance(event, dict) else event for event in results[1:]] == ["success"] * 4


async def test_triggers_admitted_during_the_import_start_one_per_loop_step_after_it(api, sleeps, monkeypatch):
    """All starting in the step the import ends would run every first poll's set-up in that one step."""
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))
    monkeypatch.setattr(trigger_module, "_hook_class", None)
    loop = asyncio.get_running_loop()
    step = 0

    def count_steps() -> None:
        nonlocal step
        step += 1
        loop.call_soon(count_steps)  # runs once in every step of the loop

    started_in_step: list[int] = []
    hook_class = trigger_module._import_hook_class()

    class RecordingHook(hook_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            started_in_step.append(step)
            super().__init__(*args, **kwargs)

    def slow_import() -> type:
        time.sleep(0.2)
        return RecordingHook

    count_steps()
    with mock.patch.object(trigger_module, "_import_hook_class", side_effect=slow_import):
        events = await asyncio.gather(*(only_event(make_trigger()) for _ in range(20)))

    assert [event["status"] for event in events] == ["success"] * 20
    assert len(set(started_in_step)) == 20, started_in_step


async def test_a_failed_hook_import_is_tried_again_by_the_next_trigger(api, sleeps, monkeypatch):
    api.add("GET", RESULT_PATH, Reply(json_body=prediction("completed")))
    monkeypatch.setattr(trigger_module, "_hook_class", None)
    import_hook_class = trigger_module._import_hook_class

    with mock.patch.object(
        trigger_module, "_import_hook_class", side_effect=[ImportError("aiohttp is not installed"), import_hook_class()]
    ):
        with pytest.raises(ImportError, match="aiohttp is not installed"):
            await only_event(make_trigger())
        assert (await only_event(make_trigger()))["status"] == "success"
