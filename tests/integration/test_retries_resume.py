"""A retry must never pay twice: proven with the emulator's submit counter."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionWaitTimeoutError,
    WaveSpeedSubmissionUncertainError,
)
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from tests.helpers.airflow_context import StateStore, make_context, variables, without_state_store
from wavespeed_emulator import FaultConfig, WaveSpeedEmulator

pytestmark = pytest.mark.integration

AUDIO = "https://media.example/fr.wav"


def lipsync(video: str = "https://media.example/talk.mp4", **kwargs) -> LipsyncOperator:
    return LipsyncOperator(task_id="lipsync", video=video, audio=AUDIO, poll_interval=0.1, **kwargs)


def test_retry_resumes_running_prediction_instead_of_resubmitting(lipsync_emulator: WaveSpeedEmulator):
    store = StateStore()
    with pytest.raises(TaskDeferred) as deferred:
        lipsync(deferrable=True).execute(make_context(store))
    # The worker (or triggerer) dies here; Airflow retries the task on another worker.

    result = lipsync(deferrable=False).execute(make_context(store))

    assert result["request_id"] == deferred.value.trigger.request_id
    assert result["status"] == "completed"
    assert lipsync_emulator.stats()["submits"] == 1


def test_retry_of_a_completed_prediction_returns_it_without_waiting_or_paying(lipsync_emulator: WaveSpeedEmulator):
    store = StateStore()
    with pytest.raises(TaskDeferred) as deferred:
        lipsync(deferrable=True).execute(make_context(store))
    request_id = deferred.value.trigger.request_id
    WaveSpeedHook().wait_for_prediction(request_id, poll_interval=0.1)  # it completes while nobody waits

    result = lipsync(deferrable=True).execute(make_context(store))  # no TaskDeferred: already done

    assert result["request_id"] == request_id
    assert lipsync_emulator.stats()["submits"] == 1


def test_retry_after_a_failed_prediction_submits_anew(lipsync_emulator: WaveSpeedEmulator):
    store = StateStore()
    with pytest.raises(PredictionFailedError, match="1402"):
        lipsync(video="https://media.invalid/private.mp4", deferrable=False).execute(make_context(store))

    with pytest.raises(PredictionFailedError):
        lipsync(video="https://media.invalid/private.mp4", deferrable=False).execute(make_context(store))

    assert lipsync_emulator.stats()["submits"] == 2


REQUEST_ID_VARIABLE = "wavespeed_request_id__dubbing__run-1__lipsync__-1"


def test_without_a_task_state_store_a_killed_worker_s_retry_resumes_through_a_variable(
    lipsync_emulator: WaveSpeedEmulator,
):
    context = without_state_store(make_context())
    with variables() as held:
        with pytest.raises(TaskDeferred) as deferred:
            lipsync(deferrable=True).execute(context)
        # The worker is SIGKILLed here: nothing after the deferral runs, the Variable stays.
        assert list(held) == [REQUEST_ID_VARIABLE]

        result = lipsync(deferrable=False).execute(context)

    assert result["request_id"] == deferred.value.trigger.request_id
    assert lipsync_emulator.stats()["submits"] == 1
    assert held == {}, "the Variable is deleted when the task succeeds"


def test_the_last_try_of_a_failed_prediction_leaves_no_variable_behind(lipsync_emulator: WaveSpeedEmulator):
    last_try = without_state_store(make_context(try_number=2, max_tries=1))
    with variables() as held, pytest.raises(PredictionFailedError, match="1402"):
        lipsync(video="https://media.invalid/private.mp4", deferrable=False).execute(last_try)

    assert held == {}
    assert lipsync_emulator.stats()["submits"] == 1


def test_the_last_try_keeps_the_variable_of_a_paid_prediction_and_a_clear_collects_it_without_paying(
    lipsync_emulator: WaveSpeedEmulator,
):
    last_try = without_state_store(make_context(try_number=2, max_tries=1))
    with variables() as held:
        with pytest.raises(PredictionWaitTimeoutError):
            lipsync(deferrable=False, timeout=0.1).execute(last_try)
        assert list(held) == [REQUEST_ID_VARIABLE]

        # A clear raises max_tries past the try number: the task runs again, with the Variable.
        result = lipsync(deferrable=False).execute(without_state_store(make_context(try_number=3, max_tries=3)))

    assert result["status"] == "completed"
    assert lipsync_emulator.stats()["submits"] == 1
    assert held == {}


def test_a_submit_lost_after_acceptance_is_never_paid_twice_and_fails_loudly(lipsync_emulator: WaveSpeedEmulator):
    store = StateStore()
    lipsync_emulator.set_faults(FaultConfig(rate_502=1.0, after_accept_rate=1.0, routes=("submit",)))
    with pytest.raises(WaveSpeedSubmissionUncertainError):
        lipsync().execute(make_context(store))
    lipsync_emulator.set_faults(FaultConfig())
    (created,) = lipsync_emulator.stats()["predictions"]

    with pytest.raises(WaveSpeedSubmissionUncertainError, match=created):  # Airflow's retry
        lipsync().execute(make_context(store))

    stats = lipsync_emulator.stats()
    assert (stats["submits"], stats["duplicate_submits"]) == (1, 0)


def test_a_submit_lost_before_acceptance_is_resubmitted_once_the_history_shows_nothing(
    lipsync_emulator: WaveSpeedEmulator,
):
    store = StateStore()
    lipsync_emulator.set_faults(FaultConfig(rate_drop=1.0, before_accept_routes=("submit",), routes=("submit",)))
    with pytest.raises(WaveSpeedSubmissionUncertainError):
        lipsync().execute(make_context(store))
    lipsync_emulator.set_faults(FaultConfig())
    assert lipsync_emulator.stats()["submits"] == 0

    result = lipsync(deferrable=False).execute(make_context(store))  # Airflow's retry

    assert result["status"] == "completed"
    assert lipsync_emulator.stats()["submits"] == 1
