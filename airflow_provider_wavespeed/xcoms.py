"""The provider's XCom keys, and reading what every task instance of a DAG run pushed under one of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_3_PLUS

RESULT_XCOM_KEY = "return_value"
"""Airflow's key for what a task returns: the result dict of a WaveSpeed task."""
REQUEST_ID_XCOM_KEY = "request_id"
"""The prediction a task submitted, pushed the moment WaveSpeed answers the submit."""
PRICE_XCOM_KEY = "price"
"""The quote a task is about to pay, pushed just before it submits."""
INPUTS_XCOM_KEY = "wavespeed_inputs"
"""The fingerprints of a task's inputs, pushed before it submits (a deferral keeps them)."""
CLAIM_XCOM_KEY = "wavespeed_output_file"
"""The output file a task claims in its DAG run, so that two tasks never write one file."""
COST_XCOM_KEY = "cost"
"""A budget task's quote of its DAG run: ``total``, ``currency``, ``budget``, ``within_budget``, ``quotes``."""


def pull_from_every_task_instance(context: Any, task_ids: list[str], key: str) -> list[Any]:
    """The values the task instances of ``task_ids`` in this DAG run pushed as ``key``, at every map index."""
    ti = context["ti"]
    if hasattr(ti, "get_ti_count") and not AIRFLOW_V_3_3_PLUS:
        # The Task SDK before Airflow 3.3 pulls only the caller's own map index by default
        # (3.3 pulls them all in one call): ask for each one (-1 for an unmapped task).
        pulled: list[Any] = []
        for task_id in task_ids:
            count = ti.get_ti_count(dag_id=ti.dag_id, task_ids=[task_id], run_ids=[ti.run_id])
            found = ti.xcom_pull(task_ids=[task_id], key=key, map_indexes=[-1, *range(count)])
            pulled += _pulled_values(found)
        return pulled
    return _pulled_values(ti.xcom_pull(task_ids=task_ids, key=key))


def dag_task_ids(context: Any, task: Any) -> list[str]:
    """Every task id of the DAG ``task`` runs in (just its own when the DAG is unknown)."""
    dag = context.get("dag") or (task.dag if task.has_dag() else None)
    return list(getattr(dag, "task_ids", None) or [task.task_id])


def _pulled_values(pulled: Any) -> list[Any]:
    """What ``xcom_pull`` returned for several tasks, as a list (Airflow 2.11 gives a lazy sequence)."""
    if pulled is None or isinstance(pulled, (str, bytes, Mapping)):
        return [pulled]
    return list(pulled)
