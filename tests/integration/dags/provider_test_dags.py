"""DAGs the integration tests run with ``dag.test()`` against the emulator; inputs come as run conf."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from airflow_provider_wavespeed.sensors.prediction import PredictionSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
FAST: dict[str, Any] = {"poll_interval": 0.2, "max_poll_interval": 0.5}

with DAG("it_lipsync", schedule=None, start_date=START, params={"output_path": None}):
    LipsyncOperator(
        task_id="lipsync",
        video="{{ params.video }}",
        audio="{{ params.audio }}",
        sync_mode="{{ params.sync_mode }}",
        output_path="{{ params.output_path or '' }}",
        deferrable=True,
        **FAST,
    )

with DAG("it_submit_and_sense", schedule=None, start_date=START):
    submit = LipsyncOperator(
        task_id="submit", video="{{ params.video }}", audio="{{ params.audio }}", wait_for_completion=False
    )
    wait = PredictionSensor(
        task_id="wait",
        request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
        deferrable=True,
        poke_interval=0.2,
        max_poll_interval=0.5,
    )
    submit >> wait

with DAG("it_mapped_lipsync", schedule=None, start_date=START):

    @task
    def pairs(params: dict | None = None) -> list[dict[str, str]]:
        assert params is not None
        return params["pairs"]

    LipsyncOperator.partial(
        task_id="dub", deferrable=True, output_path="{{ params.output_path }}", **FAST
    ).expand_kwargs(pairs())
