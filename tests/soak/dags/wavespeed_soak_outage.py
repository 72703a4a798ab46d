"""The soak's outage DAG: lipsync tasks with ``retries=0`` that must ride out a full API outage.

Written for `devstack.soak_outage`, which triggers it with ``{"pairs": [...]}`` once the soak has
started, takes the emulator down once all of them wait, and reads their outputs from
``WAVESPEED_SOAK_OUTAGE_OUTPUT``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

with DAG(
    dag_id="wavespeed_soak_outage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=1000,
):

    @task(priority_weight=1000)
    def pairs(**context: object) -> list[dict[str, str]]:
        conf = context["dag_run"].conf  # type: ignore[attr-defined]
        return list(conf["pairs"])

    LipsyncOperator.partial(
        task_id="lipsync",
        output_path=os.environ.get("WAVESPEED_SOAK_OUTAGE_OUTPUT", "/tmp/wavespeed-soak-outage/"),
        deferrable=True,
        poll_interval=3,
        max_poll_interval=10,
        timeout=timedelta(minutes=30),
        retries=0,
        # The soak's faults strike submits before acceptance, so a lost answer there created nothing:
        # with no retry to reconcile it, submitting again at once is what keeps the task alive.
        uncertain_submit="resubmit",
        # Ahead of the main soak run for worker slots, so they are all waiting when the outage starts.
        priority_weight=1000,
    ).expand_kwargs(pairs())
