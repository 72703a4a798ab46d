"""Extra links in the Airflow UI: open the video a task produced."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

OUTPUT_URL_XCOM_KEY = "output_url"
"""XCom key under which operators and sensors push the first output's URL once completed."""


class WaveSpeedOutputLink(BaseOperatorLink):
    """The output (e.g. the lip-synced video) of the task's prediction, as WaveSpeed serves it.

    WaveSpeed deletes outputs after 7 days; set ``output_path`` on the operator to keep a copy.
    """

    name = "WaveSpeed output"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(ti_key=ti_key, key=OUTPUT_URL_XCOM_KEY)
        return str(url) if url else ""
