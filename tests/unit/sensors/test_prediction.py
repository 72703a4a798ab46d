"""PredictionSensor with the hook replaced: poking, deferring, and what it returns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import PokeReturnValue, TaskDeferred

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    WaveSpeedAuthError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.sensors.prediction import PredictionSensor
from tests.helpers.airflow_context import make_context
from tests.helpers.api_answers import prediction
from tests.helpers.wavespeed_tasks import parsed, replaced_hook


@pytest.fixture
def sensor_hook():
    yield from replaced_hook(PredictionSensor)


def test_sensor_poke_is_false_while_running_and_returns_the_result_when_done(sensor_hook):
    sensor = PredictionSensor(task_id="wait", request_id="req-1")
    context = make_context()
    sensor_hook.get_prediction.return_value = parsed("processing")
    assert sensor.poke(context) is False
    sensor_hook.get_prediction.return_value = parsed("completed")
    done = sensor.poke(context)
    assert isinstance(done, PokeReturnValue)
    assert done.is_done
    assert done.xcom_value is not None
    assert done.xcom_value["outputs"] == ["https://cdn.test/out.mp4"]


def test_sensor_poke_fails_with_wavespeeds_code(sensor_hook):
    sensor_hook.get_prediction.return_value = parsed("failed", error="media not reachable", code=1402)
    with pytest.raises(PredictionFailedError, match=r"\[code 1402\]: media not reachable"):
        PredictionSensor(task_id="wait", request_id="req-1").poke(make_context())


def test_deferrable_sensor_checks_once_then_defers(sensor_hook):
    sensor_hook.get_prediction.return_value = parsed("processing")
    sensor = PredictionSensor(task_id="wait", request_id="req-1", deferrable=True, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    assert deferred.value.trigger.request_id == "req-1"
    assert deferred.value.timeout > timedelta(seconds=600)


def test_deferrable_sensor_returns_at_once_when_already_done(sensor_hook):
    sensor_hook.get_prediction.return_value = parsed("completed")
    result = PredictionSensor(task_id="wait", request_id="req-1", deferrable=True).execute(make_context())
    assert result["status"] == "completed"


def test_sensor_execute_complete_validates_the_event(sensor_hook):
    sensor = PredictionSensor(task_id="wait", request_id="req-1")
    with pytest.raises(WaveSpeedError):
        sensor.execute_complete(make_context(), None)
    event = {"status": "success", "request_id": "req-1", "prediction": prediction("completed")["data"]}
    assert sensor.execute_complete(make_context(), event)["request_id"] == "req-1"


@pytest.mark.parametrize(
    "transient",
    [
        WaveSpeedUnavailableError("down", http_status=503),
        WaveSpeedConnectionError("refused", request_sent=False),
    ],
)
def test_a_poking_sensor_counts_a_transient_failure_as_not_done_yet(sensor_hook, transient):
    sensor_hook.get_prediction.side_effect = transient

    assert PredictionSensor(task_id="wait", request_id="req-1").poke(make_context()) is False


def test_a_poking_sensor_fails_at_once_on_a_rejected_key(sensor_hook):
    sensor_hook.get_prediction.side_effect = WaveSpeedAuthError("rejected", http_status=401)

    with pytest.raises(WaveSpeedAuthError):
        PredictionSensor(task_id="wait", request_id="req-1").poke(make_context())
