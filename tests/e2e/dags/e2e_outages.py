"""The run the outage tests put through a full WaveSpeed outage, with Airflow's default ``retries=0``.

Triggered with ``{"deferred": [pairs...], "on_worker": [pairs...]}``: each pair a ``video`` and an
``audio`` URL. ``deferred`` waits in the triggerer, ``on_worker`` with ``deferrable=False``; both
must ride out the outage without a retry, and store their outputs under ``WAVESPEED_OUTAGE_OUTPUT``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

OUTPUT = os.environ.get("WAVESPEED_OUTAGE_OUTPUT", "/tmp/wavespeed-outage/")
MAX_POLL_INTERVAL = 10.0
WAIT: dict[str, Any] = {
    "poll_interval": 2.0,
    "max_poll_interval": MAX_POLL_INTERVAL,
    "timeout": timedelta(minutes=20),
    "output_path": OUTPUT,
    "retries": 0,
}

with DAG(
    dag_id="e2e_outages",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=100,
):
    # Only the lipsync tasks must get by without a retry; these may meet a busy machine's hiccup.
    @task(retries=3)
    def deferred_pairs(**context: Any) -> list[dict[str, str]]:
        return list(context["dag_run"].conf["deferred"])

    @task(retries=3)
    def on_worker_pairs(**context: Any) -> list[dict[str, str]]:
        return list(context["dag_run"].conf["on_worker"])

    LipsyncOperator.partial(task_id="deferred", deferrable=True, **WAIT).expand_kwargs(deferred_pairs())
    LipsyncOperator.partial(task_id="on_worker", deferrable=False, **WAIT).expand_kwargs(on_worker_pairs())
