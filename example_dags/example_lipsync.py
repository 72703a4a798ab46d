"""The smallest complete use: one video and one audio track, lip-synced, the result kept in storage.

Run it with ``make demo`` (the local WaveSpeed emulator, free), or against WaveSpeed: put your API
key in the ``wavespeed_default`` connection and trigger the DAG with your own media, e.g.
``{"video": "s3://my-bucket/interview.mp4", "audio": "https://example.com/interview.fr.wav",
"output_path": "s3://my-bucket/lipsynced/"}``. Local paths and object-storage URIs are uploaded to
WaveSpeed first; http(s) URLs are passed as they are and must be publicly reachable.
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_wavespeed.operators.lipsync import SYNC_MODES, LipsyncOperator

# Where `make demo` writes its generated clips; any directory or object-storage prefix works.
MEDIA = os.environ.get("WAVESPEED_EXAMPLE_MEDIA") or os.path.join(tempfile.gettempdir(), "wavespeed-example-media")

with DAG(
    dag_id="example_lipsync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["wavespeed", "example"],
    params={
        "video": Param(f"{MEDIA}/interview.mp4", type="string", description="Video: path, URI or URL"),
        "audio": Param(f"{MEDIA}/interview.fr.wav", type="string", description="Audio: path, URI or URL"),
        "sync_mode": Param("cut_off", enum=list(SYNC_MODES), description="When the lengths differ"),
        "output_path": Param(f"{MEDIA}/lipsynced/", type="string", description="Where to keep the result"),
    },
) as dag:
    # [START howto_operator_lipsync]
    lipsync = LipsyncOperator(
        task_id="lipsync",
        video="{{ params.video }}",
        audio="{{ params.audio }}",
        sync_mode="{{ params.sync_mode }}",
        output_path="{{ params.output_path }}",
        deferrable=True,  # wait in the triggerer: no worker slot is held while the model runs
    )
    # [END howto_operator_lipsync]
