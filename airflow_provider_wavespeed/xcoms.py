"""Reading what every task instance of a DAG run pushed under one XCom key, on every Airflow line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def pull_from_every_task_instance(context: Any, task_ids: list[str], key: str) -> list[Any]:
    """The values the task instances of ``task_ids`` in this DAG run pushed as ``key``, at every map index."""
    ti = context["ti"]
    if hasattr(ti, "get_ti_count") and _airflow_line() < (3, 3):
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


def _airflow_line() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


def _pulled_values(pulled: Any) -> list[Any]:
    """What ``xcom_pull`` returned for several tasks, as a list (Airflow 2.11 gives a lazy sequence)."""
    if pulled is None or isinstance(pulled, (str, bytes, Mapping)):
        return [pulled]
    return list(pulled)
