"""The soak's DAG: one mapped LipsyncOperator per prediction, inputs and settings from the run conf.

Written for `devstack.soak`, which triggers it with ``{"pairs": [{"video": ..., "audio": ...}, ...]}``
and reads the outputs from ``WAVESPEED_SOAK_OUTPUT``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

with DAG(
    dag_id="wavespeed_soak",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=1000,  # the executor's parallelism is the throttle, not the DAG
):

    @task
    def pairs(**context: object) -> list[dict[str, str]]:
        conf = context["dag_run"].conf  # type: ignore[attr-defined]
        return list(conf["pairs"])

    LipsyncOperator.partial(
        task_id="lipsync",
        output_path=os.environ.get("WAVESPEED_SOAK_OUTPUT", "/tmp/wavespeed-soak/"),
        deferrable=True,
        poll_interval=3,
        max_poll_interval=10,
        timeout=timedelta(minutes=30),
        retries=int(os.environ.get("WAVESPEED_SOAK_RETRIES", "8")),
        retry_delay=timedelta(seconds=3),
        # The account is busy on purpose: the outage DAG's lipsyncs run beside these, so after a lost
        # submit answer WaveSpeed's history holds predictions no task of this run claims, and the
        # default "fail" stops for a person (docs/guarantees.md). The soak's submit faults all strike
        # before acceptance, so submitting again never pays twice here, and 0 duplicates still holds.
        uncertain_submit="resubmit",
    ).expand_kwargs(pairs())
