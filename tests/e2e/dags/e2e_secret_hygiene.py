"""The run the secret-hygiene test searches: every way a task meets the API key, including failures.

- ``lipsync``: uploads, submits, defers; the triggerer completes it; the output is downloaded.
- ``unreachable_media``: the prediction fails (1402), so a traceback lands in the task's log.
- ``wrong_key``: the submit is refused with 401, so an auth error's traceback lands there too.
- ``mistyped_connection``: its connection does not exist; ``WAVESPEED_API_KEY`` is set, but stands
  in only for the default connection, so the task fails naming the id before anything is sent.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

MEDIA = os.environ.get("WAVESPEED_EXAMPLE_MEDIA", "/nonexistent")
FAST: dict[str, Any] = {"deferrable": True, "poll_interval": 1.0, "max_poll_interval": 2.0}

with DAG(
    dag_id="e2e_secret_hygiene",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
):
    LipsyncOperator(
        task_id="lipsync",
        video=f"{MEDIA}/interview.mp4",
        audio=f"{MEDIA}/interview.fr.wav",
        output_path=f"{MEDIA}/hygiene/",
        **FAST,
    )
    LipsyncOperator(
        task_id="unreachable_media",
        video=f"{MEDIA}/interview.mp4",
        audio="https://media.invalid/interview.fr.wav",
        **FAST,
    )
    LipsyncOperator(
        task_id="wrong_key",
        video="https://media.example.com/interview.mp4",
        audio="https://media.example.com/interview.fr.wav",
        wavespeed_conn_id="wavespeed_wrong_key",
        **FAST,
    )
    LipsyncOperator(
        task_id="mistyped_connection",
        video=f"{MEDIA}/interview.mp4",
        audio=f"{MEDIA}/interview.fr.wav",
        wavespeed_conn_id="wavespeed_mistyped",
        **FAST,
    )
