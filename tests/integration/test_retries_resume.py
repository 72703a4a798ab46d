"""A retry must never pay twice: proven with the emulator's submit counter."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_wavespeed.emulator import WaveSpeedEmulator
from airflow_provider_wavespeed.exceptions import PredictionFailedError
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from tests.unit.test_operators import StateStore, make_context

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
