"""A recurring dubbing pipeline: every day, lip-sync each video to each of its dubbed audio tracks.

Layout in storage (``WAVESPEED_EXAMPLE_STORAGE``, e.g. ``s3://aws_default@media/dubbing``; a local
``file://`` directory by default)::

    incoming/<ds>/<name>.mp4           the original video
    incoming/<ds>/<name>.<lang>.wav    its dubbed audio, one file per language
    dubbed/<ds>/<name>.<lang>.mp4      written by this DAG
    dubbed/<ds>/manifest.json          what was produced, with the WaveSpeed request ids

Before the fan-out, ``quote_dubs`` uploads each pair once and asks WaveSpeed the price of every
dub; above the ``budget`` param (USD) the run stops before anything is paid for, or, on Airflow
3.1+ with ``approve_over_budget``, waits for a person to approve the spend (Required Actions in the
UI). The lipsync tasks are mapped, one per (video, language), and wait deferred: a hundred dubs in
flight hold no worker slot. When every dub of the day is stored, the ``dubbed`` Asset (a Dataset on
Airflow 2) is updated, so downstream DAGs can be scheduled on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, AirflowSkipException, Asset, ObjectStoragePath, Param, task

from airflow_provider_wavespeed.operators.budget import WaveSpeedBudgetOperator
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_1_PLUS

MEDIA = os.environ.get("WAVESPEED_EXAMPLE_MEDIA") or os.path.join(tempfile.gettempdir(), "wavespeed-example-media")
STORAGE = (os.environ.get("WAVESPEED_EXAMPLE_STORAGE") or f"file://{MEDIA}").rstrip("/")
DUBBED = Asset(f"{STORAGE}/dubbed")

with DAG(
    dag_id="example_dubbing_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["wavespeed", "example"],
    params={
        "budget": Param(5.0, type=["null", "number"], minimum=0, description="Most this run may spend (USD)"),
        "approve_over_budget": Param(
            False, type="boolean", description="Over budget, ask a person to approve (Airflow 3.1+) instead of stopping"
        ),
    },
) as dag:

    @task
    def discover_pairs(ds: str | None = None) -> list[dict[str, str]]:
        """One (video, dubbed audio, output) per language found for the day."""
        incoming = ObjectStoragePath(f"{STORAGE}/incoming/{ds}/")
        pairs = []
        for video in sorted(incoming.glob("*.mp4"), key=str):
            for audio in sorted(incoming.glob(f"{video.stem}.*.wav"), key=str):
                language = audio.stem.rsplit(".", 1)[1]
                pairs.append(
                    {
                        "video": str(video),
                        "audio": str(audio),
                        "output_path": f"{STORAGE}/dubbed/{ds}/{video.stem}.{language}.mp4",
                    }
                )
        if not pairs:
            raise AirflowSkipException(f"No <name>.mp4 with <name>.<lang>.wav dubs in {incoming}")
        return pairs

    # [START howto_operator_wavespeed_budget]
    # A dub runs a few percent longer or shorter than the original speech: remap stretches the
    # video to the dub, so no word is cut and no frame repeats. It also makes each dub cost the
    # audio's length, which the quote follows.
    sync_mode = "remap"
    quote_dubs = WaveSpeedBudgetOperator(
        task_id="quote_dubs",
        predictions=discover_pairs(),
        common_inputs={"sync_mode": sync_mode},
        budget="{{ params.budget }}",
        ask_approval_over_budget="{{ params.approve_over_budget }}",
    )
    # [END howto_operator_wavespeed_budget]

    # [START howto_operator_lipsync_mapped]
    lipsync = LipsyncOperator.partial(task_id="lipsync", sync_mode=sync_mode, deferrable=True).expand_kwargs(
        quote_dubs.output
    )
    # [END howto_operator_lipsync_mapped]

    if AIRFLOW_V_3_1_PLUS:
        from airflow_provider_wavespeed.operators.approval import WaveSpeedSpendApprovalOperator

        quote_dubs >> WaveSpeedSpendApprovalOperator(task_id="approve_spend", budget_task_id="quote_dubs") >> lipsync

    @task(outlets=[DUBBED])
    def publish_manifest(results: list[dict[str, Any]], ds: str | None = None) -> str:
        """Record what was produced; finishing this task updates the ``dubbed`` Asset."""
        manifest = ObjectStoragePath(f"{STORAGE}/dubbed/{ds}/manifest.json")
        entries = [{"output": result["stored_outputs"][0], "request_id": result["request_id"]} for result in results]
        manifest.write_text(json.dumps({"date": ds, "dubs": entries}, indent=2))
        return str(manifest)

    publish_manifest(lipsync.output)  # type: ignore[arg-type]  # the XComArg resolves to the list when run
