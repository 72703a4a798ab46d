"""Extra links in the Airflow UI: the stored copy of a task's output, and WaveSpeed's own copy.

On Airflow 3 the worker computes each link when the task ends (and when it defers) from the
operator it ran, and stores the result for the UI: reading the operator's attributes there needs no
XCom lookup, so a deferring task (which has no output yet) asks for nothing that does not exist.
Airflow 2 computes links in the webserver from the DAG's operator, which never ran: there they come
from the task's result in XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink

from airflow_provider_wavespeed.media import local_path_of, path_text
from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_wavespeed.xcoms import RESULT_XCOM_KEY

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey


def _result_of(ti_key: TaskInstanceKey) -> dict[str, Any]:
    from airflow.providers.common.compat.sdk import XCom

    result = XCom.get_value(ti_key=ti_key, key=RESULT_XCOM_KEY)
    return result if isinstance(result, dict) else {}


def first(values: Any) -> str:
    """The first of a result's ``outputs`` / ``stored_outputs`` as text, or ``""``."""
    if isinstance(values, (list, tuple)) and values:
        return str(values[0])
    return ""


def browsable_url(stored: str) -> str:
    """A URL a person can open for a stored output: the object-storage console, or the URI itself.

    A presigned URL would expire long before anyone clicks the link (it is computed once, when the
    task ends), so object storage links to the bucket's web console where one is known.
    """
    local = local_path_of(stored)
    if local is not None:
        return local.absolute().as_uri()
    parts = urlsplit(stored)
    bucket = parts.hostname or ""
    key = parts.path.lstrip("/")
    if "@" in parts.netloc:  # Airflow's ``s3://conn_id@bucket/key`` form names a connection, not a bucket
        bucket = parts.netloc.rsplit("@", 1)[1]
    if parts.scheme in ("s3", "s3a") and bucket:
        return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"
    if parts.scheme in ("gs", "gcs") and bucket:
        return f"https://console.cloud.google.com/storage/browser/_details/{quote(bucket)}/{quote(key)}"
    return stored


class StoredOutputLink(BaseOperatorLink):
    """The copy of the output kept at the task's ``output_path`` (empty when it has none)."""

    name = "Stored output"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        if not AIRFLOW_V_3_0_PLUS:
            stored = first(_result_of(ti_key).get("stored_outputs"))
        else:
            stored = str(getattr(operator, "stored_output", None) or "")
        text = path_text(stored) if stored else None
        return browsable_url(text) if text else ""


class WaveSpeedOutputLink(BaseOperatorLink):
    """The output (e.g. the lip-synced video) as WaveSpeed serves it, which it deletes after 7 days."""

    name = "WaveSpeed copy (deleted after 7 days)"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        if not AIRFLOW_V_3_0_PLUS:
            return first(_result_of(ti_key).get("outputs"))
        return str(getattr(operator, "wavespeed_output", None) or "")
