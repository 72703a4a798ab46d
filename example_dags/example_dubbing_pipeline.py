"""A recurring dubbing pipeline: every day, lip-sync each video to each of its dubbed audio tracks.

Layout in storage (``WAVESPEED_EXAMPLE_STORAGE``, e.g. ``s3://aws_default@media/dubbing``; a local
``file://`` directory by default)::

    incoming/<ds>/<name>.mp4           the original video
    incoming/<ds>/<name>.<lang>.wav    its dubbed audio, one file per language
    dubbed/<ds>/<name>.<lang>.mp4      written by this DAG
    dubbed/<ds>/manifest.json          what was produced, with the WaveSpeed request ids

The lipsync tasks are mapped, one per (video, language), and wait deferred: a hundred dubs in
flight hold no worker slot. When every dub of the day is stored, the ``dubbed`` Asset (a Dataset on
Airflow 2) is updated, so downstream DAGs can be scheduled on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, AirflowSkipException, Asset, ObjectStoragePath, task

from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

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

    # [START howto_operator_lipsync_mapped]
    # A dub runs a few percent longer or shorter than the original speech: remap stretches the
    # video to the dub, so no word is cut and no frame repeats.
    lipsync = LipsyncOperator.partial(task_id="lipsync", sync_mode="remap", deferrable=True).expand_kwargs(
        discover_pairs()
    )
    # [END howto_operator_lipsync_mapped]

    @task(outlets=[DUBBED])
    def publish_manifest(results: list[dict[str, Any]], ds: str | None = None) -> str:
        """Record what was produced; finishing this task updates the ``dubbed`` Asset."""
        manifest = ObjectStoragePath(f"{STORAGE}/dubbed/{ds}/manifest.json")
        entries = [{"output": result["stored_outputs"][0], "request_id": result["request_id"]} for result in results]
        manifest.write_text(json.dumps({"date": ds, "dubs": entries}, indent=2))
        return str(manifest)

    publish_manifest(lipsync.output)
