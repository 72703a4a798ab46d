"""Remembering which prediction a task instance submitted, across its tries.

A retry (or a worker that died mid-wait) must not pay for a second prediction while the first is
still running or already done. The request id is written down right after the submit, before any
waiting, and read back at the start of the next try:

- Airflow 3.3+: the task state store (``context["task_state_store"]``), kept per task instance
  across tries and discarded when the task is cleared.
- Older Airflow (2.11, 3.0-3.2) has no such store, and XComs are wiped at the start of each try,
  so the id goes into an Airflow Variable named ``wavespeed_request_id__<dag>__<run>__<task>__<map>``,
  deleted again when the task succeeds. Clearing a task does not delete that Variable: a cleared
  task whose prediction is still running or completed resumes it (delete the Variable to force a
  new prediction).

A worker that dies between the submit's answer and this write (milliseconds) still leaves a
prediction behind that the next try cannot know about; Airflow's own ResumableJobMixin has the
same window.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

STATE_KEY = "wavespeed_request_id"


class SubmittedPredictionRecord:
    """The request id a task instance submitted, stored where its next try can read it."""

    def __init__(self, context: Any) -> None:
        self._state_store = context.get("task_state_store")
        ti = context["ti"]
        self._variable_key = "__".join(
            (STATE_KEY, str(ti.dag_id), str(ti.run_id), str(ti.task_id), str(getattr(ti, "map_index", -1)))
        )

    @property
    def backend(self) -> str:
        """Where the id is kept: ``task_state_store`` or ``variable``."""
        return "task_state_store" if self._state_store is not None else "variable"

    def recall(self) -> str | None:
        """The request id an earlier try of this task instance submitted, if any."""
        if self._state_store is not None:
            value = self._state_store.get(STATE_KEY)
        else:
            from airflow.providers.common.compat.sdk import Variable

            # The default is passed by position: Airflow 2 names it ``default_var``, Airflow 3 ``default``.
            value = Variable.get(self._variable_key, None)
        return str(value) if value else None

    def remember(self, request_id: str) -> None:
        if self._state_store is not None:
            self._state_store.set(STATE_KEY, request_id)
            return
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(
            self._variable_key,
            request_id,
            description="WaveSpeed prediction submitted by this task instance; lets a retry resume it "
            "instead of paying again. Deleted when the task succeeds.",
        )

    def forget(self) -> None:
        if self._state_store is not None:
            self._state_store.delete(STATE_KEY)
            return
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(self._variable_key)
