"""DAGs of the stored-output tests (tests/integration/test_stored_outputs.py); inputs come as run conf."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_wavespeed.sensors.prediction import PredictionSensor

with DAG("it_sense_and_store", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    PredictionSensor(
        task_id="wait",
        request_id="{{ params.request_id }}",
        output_path="{{ params.output_path }}",
        deferrable=True,
        poke_interval=0.2,
        max_poll_interval=0.5,
    )
