"""One lipsync with ``retries=0`` whose submit answer the recovery test makes the emulator lose.

Triggered with ``{"video": ..., "audio": ...}``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

with DAG(
    dag_id="e2e_recovery",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    LipsyncOperator(
        task_id="lipsync",
        video="{{ dag_run.conf['video'] }}",
        audio="{{ dag_run.conf['audio'] }}",
        deferrable=True,
        poll_interval=1.0,
        max_poll_interval=2.0,
        retries=0,
    )
