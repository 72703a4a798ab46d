"""A recurring dubbing pipeline: every day, lip-sync each video to each of its dubbed audio tracks.

Layout in storage (the ``storage`` param; its default is ``WAVESPEED_EXAMPLE_STORAGE``, e.g.
``s3://aws_default@media/dubbing``, or a local ``file://`` directory)::

    incoming/<day>/<name>.mp4           the original video
    incoming/<day>/<name>.<lang>.wav    its dubbed audio, one file per language
    dubbed/<day>/<name>.<lang>.mp4      written by this DAG
    dubbed/<day>/<name>.<lang>.mp4.wavespeed.json   what produced it (request id, inputs by content hash)
    dubbed/<day>/manifest.json          what was produced, with the WaveSpeed request ids

``<day>`` is the run's date (``ds``) unless the ``day`` param names another folder, so a person can
trigger the DAG from the UI on their own media. Before the fan-out, ``quote_dubs`` uploads each
distinct file once (into the upload cache the lipsync tasks then find it in) and asks WaveSpeed the
price of every dub; above the ``budget`` param (USD) the run stops before anything is paid for, or,
on Airflow 3.1+ with ``approve_over_budget``, waits for a person to approve the spend (Required
Actions in the UI). The lipsync tasks are mapped, one per (video, language), labelled
``<name>.<lang>`` in the UI, and wait deferred: a hundred dubs in flight hold no worker slot. When
every dub of the day is stored, the ``dubbed`` Asset (a Dataset on Airflow 2) of the default storage
is updated, so downstream DAGs can be scheduled on it. Re-running a day (a clear, a backfill)
uploads and pays for nothing that is already stored from the same inputs, and only for the dubs
that changed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, AirflowSkipException, Asset, ObjectStoragePath, Param, task

from airflow_provider_wavespeed.operators.budget import WaveSpeedBudgetOperator
from airflow_provider_wavespeed.operators.lipsync import SYNC_MODES, LipsyncOperator
from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_1_PLUS

MEDIA = os.environ.get("WAVESPEED_EXAMPLE_MEDIA") or os.path.join(tempfile.gettempdir(), "wavespeed-example-media")
STORAGE = (os.environ.get("WAVESPEED_EXAMPLE_STORAGE") or f"file://{MEDIA}").rstrip("/")
DUBBED = Asset(f"{STORAGE}/dubbed")
log = logging.getLogger(__name__)


def _day(params: dict[str, Any], dag_run: Any) -> str:
    """The incoming/ folder of this run: the ``day`` param, else the run's date (a manual run without
    a logical date on Airflow 3 uses the time it was triggered for)."""
    when = getattr(dag_run, "logical_date", None) or dag_run.run_after
    return str(params.get("day") or when.strftime("%Y-%m-%d"))


with DAG(
    dag_id="example_dubbing_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["wavespeed", "example"],
    params={
        "storage": Param(STORAGE, type="string", description="Holds incoming/<day>/ and receives dubbed/<day>/"),
        "day": Param(
            None, type=["null", "string"], description="The incoming/ folder to dub (default: the run's date, ds)"
        ),
        "sync_mode": Param("remap", enum=list(SYNC_MODES), description="When a dub's length differs"),
        "budget": Param(5.0, type=["null", "number"], minimum=0, description="Most this run may spend (USD)"),
        "approve_over_budget": Param(
            False, type="boolean", description="Over budget, ask a person to approve (Airflow 3.1+) instead of stopping"
        ),
    },
) as dag:

    @task
    def discover_pairs(params: dict[str, Any] | None = None, dag_run: Any = None) -> list[dict[str, str]]:
        """One (video, dubbed audio, output) per language found for the day."""
        assert params is not None
        storage = str(params["storage"]).rstrip("/")
        day = _day(params, dag_run)
        incoming = ObjectStoragePath(f"{storage}/incoming/{day}/")
        log.info("Looking for <name>.mp4 videos with <name>.<lang>.wav dubs in %s", incoming)
        pairs = []
        for video in sorted(incoming.glob("*.mp4"), key=str):
            for audio in sorted(incoming.glob(f"{video.stem}.*.wav"), key=str):
                language = audio.stem.rsplit(".", 1)[1]
                pairs.append(
                    {
                        "video": str(video),
                        "audio": str(audio),
                        "output_path": f"{storage}/dubbed/{day}/{video.stem}.{language}.mp4",
                    }
                )
        if not pairs:
            present = sorted(path.name for path in incoming.iterdir()) if incoming.exists() else []
            raise AirflowSkipException(
                f"Nothing to dub for {day}: {incoming} "
                + (f"holds {present}, but no <name>.mp4 with a <name>.<lang>.wav" if present else "is empty or absent")
                + ". Add media there, or trigger with the params 'storage' and 'day' naming your own folder."
            )
        log.info("Dubbing %d pair(s): %s", len(pairs), ", ".join(pair["output_path"] for pair in pairs))
        return pairs

    # [START howto_operator_wavespeed_budget]
    # A dub runs a few percent longer or shorter than the original speech: remap (the default here)
    # stretches the video to the dub, so no word is cut and no frame repeats. It also makes each dub
    # cost the audio's length, which the quote follows.
    sync_mode = "{{ params.sync_mode }}"
    quote_dubs = WaveSpeedBudgetOperator(
        task_id="quote_dubs",
        predictions=discover_pairs(),
        common_inputs={"sync_mode": sync_mode},
        budget="{{ params.budget }}",
        ask_approval_over_budget="{{ params.approve_over_budget }}",
    )
    # [END howto_operator_wavespeed_budget]

    dubs = quote_dubs.output
    if AIRFLOW_V_3_1_PLUS:
        from airflow_provider_wavespeed.operators.approval import WaveSpeedSpendApprovalOperator

        # Passes the dubs on once a person approved a spend over budget (at once within it). Its
        # retry asks again if Airflow 3.3 loses an answer given within seconds of the question.
        approve_spend = WaveSpeedSpendApprovalOperator(
            task_id="approve_spend", budget_task_id="quote_dubs", retries=1, retry_delay=timedelta(seconds=10)
        )
        quote_dubs >> approve_spend
        dubs = approve_spend.output

    # [START howto_operator_lipsync_mapped]
    # Each mapped task is labelled in the UI by LipsyncOperator's default map_index_template: <name>.<lang>.
    lipsync = LipsyncOperator.partial(task_id="lipsync", sync_mode=sync_mode, deferrable=True).expand_kwargs(dubs)
    # [END howto_operator_lipsync_mapped]

    @task(outlets=[DUBBED])
    def publish_manifest(
        results: list[dict[str, Any]], params: dict[str, Any] | None = None, ds: str | None = None
    ) -> str:
        """Record what was produced; finishing this task updates the ``dubbed`` Asset."""
        assert params is not None
        day = params.get("day") or ds
        manifest = ObjectStoragePath(f"{str(params['storage']).rstrip('/')}/dubbed/{day}/manifest.json")
        entries = [{"output": result["stored_outputs"][0], "request_id": result["request_id"]} for result in results]
        manifest.write_text(json.dumps({"date": day, "dubs": entries}, indent=2))
        return str(manifest)

    publish_manifest(lipsync.output)
