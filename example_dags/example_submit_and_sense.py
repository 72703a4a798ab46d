"""Submit a lipsync without waiting, then wait for it downstream with a deferrable sensor.

Useful when the submit and the wait belong to different tasks: e.g. to submit many predictions
quickly and collect them later, or to wait for a prediction submitted outside Airflow (pass its id
as ``request_id``).
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from airflow_provider_wavespeed.sensors.prediction import PredictionSensor

MEDIA = os.environ.get("WAVESPEED_EXAMPLE_MEDIA") or os.path.join(tempfile.gettempdir(), "wavespeed-example-media")

with DAG(
    dag_id="example_submit_and_sense",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["wavespeed", "example"],
    params={
        "video": Param(f"{MEDIA}/interview.mp4", type="string"),
        "audio": Param(f"{MEDIA}/interview.fr.wav", type="string"),
    },
) as dag:
    # [START howto_sensor_prediction]
    submit = LipsyncOperator(
        task_id="submit",
        video="{{ params.video }}",
        audio="{{ params.audio }}",
        wait_for_completion=False,  # returns at once; the id is in XCom 'request_id'
    )
    wait = PredictionSensor(
        task_id="wait_for_lipsync",
        request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
        deferrable=True,
        timeout=3600,
    )
    # [END howto_sensor_prediction]
    submit >> wait
