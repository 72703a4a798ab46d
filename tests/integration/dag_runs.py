"""Running a DAG with ``dag.test()`` and reading back what it left in the metadata database.

Airflow 2.11, 3.0 and 3.3 differ here; each difference is bridged where it shows.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from tests.conftest import EXAMPLE_DAGS, TEST_DAGS

if TYPE_CHECKING:
    import pytest

    from wavespeed_emulator import WaveSpeedEmulator


def use_emulator(monkeypatch: pytest.MonkeyPatch, emulator: WaveSpeedEmulator, **extra: Any) -> WaveSpeedEmulator:
    """Wire ``emulator`` in as the ``wavespeed_default`` connection, with ``extra`` as its extras."""
    connection = {"conn_type": "wavespeed", "host": emulator.base_url, "password": emulator.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", json.dumps(connection))
    return emulator


def dag_bag(folder: str) -> Any:
    """Parse the DAG files of ``folder``."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1 keeps it in airflow.models.dagbag
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=folder)


def run_dag(dag_id: str, conf: dict[str, Any] | None = None, *, folder: str = TEST_DAGS, **test_kwargs: Any) -> Any:
    """Parse ``folder`` and run one DAG of it to the end with ``dag.test()``; return the DAG run."""
    from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    bag = dag_bag(folder)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        _store_like_the_dag_processor(bag, folder)
    if "logical_date" in test_kwargs and "logical_date" not in inspect.signature(dag.test).parameters:
        test_kwargs["execution_date"] = test_kwargs.pop("logical_date")  # Airflow 2's name for it
    return dag.test(run_conf=conf, **test_kwargs)


def _store_like_the_dag_processor(bag: Any, folder: str) -> None:
    """Store the parsed DAGs, and activate their assets, in their DAG bundle.

    Airflow 3.0's dag.test() runs a DAG that no DAG processor has stored: its outlets are inactive
    assets, which fail the task. Airflow 3.3's dag.test() stores the DAG itself; Airflow 2's does not
    check assets.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    (bundle,) = [bundle for bundle in manager.get_all_dag_bundles() if str(bundle.path) == folder]
    bag.sync_to_db(bundle_name=bundle.name, bundle_version=None)


def run_example(dag_id: str, conf: dict[str, Any] | None = None, **test_kwargs: Any) -> Any:
    return run_dag(dag_id, conf, folder=EXAMPLE_DAGS, **test_kwargs)


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2: XCom is the model, and get_one returns the deserialized value
        from airflow.models.xcom import XCom

        return XCom.get_one(key=key, dag_id=dag_run.dag_id, task_id=task_id, run_id=dag_run.run_id, map_index=map_index)

    with create_session() as session:
        row = session.scalar(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == key,
            )
        )
        return None if row is None else XComModel.deserialize_value(row)


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.merge(dag_run)
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def map_index_labels(dag_run: Any, task_id: str) -> list[str | None]:
    """The UI's labels of a mapped task's instances (``rendered_map_index``), by map index."""
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.merge(dag_run)
        instances = [ti for ti in dag_run.get_task_instances(session=session) if ti.task_id == task_id]
        return [ti.rendered_map_index for ti in sorted(instances, key=lambda ti: ti.map_index)]
