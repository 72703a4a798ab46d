"""The example DAGs parse cleanly, cheaply, and without touching connections or the database."""

from __future__ import annotations

import ast
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import EXAMPLE_DAGS
from tests.helpers.imports import modules_newly_imported
from tests.integration.dag_runs import dag_bag

EXPECTED_DAGS = {"example_lipsync", "example_dubbing_pipeline", "example_submit_and_sense"}


def parse_examples():
    return dag_bag(EXAMPLE_DAGS)


def test_examples_import_without_errors():
    bag = parse_examples()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED_DAGS


def test_examples_make_no_connection_lookup_at_parse_time():
    from airflow.providers.common.compat.sdk import BaseHook

    with (
        mock.patch.object(BaseHook, "get_connection", side_effect=AssertionError("connection at parse")) as sync,
        mock.patch.dict("os.environ", {"WAVESPEED_API_KEY": ""}),
    ):
        assert parse_examples().import_errors == {}
    sync.assert_not_called()


def test_examples_make_no_database_query_at_parse_time():
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        parse_examples()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert statements == []


def test_examples_do_not_import_http_clients_or_the_hook_at_parse_time():
    # What Airflow itself loads for a DAG file does not count: Airflow 3.0's task decorator imports
    # its API server, and aiohttp with it (through svcs).
    loaded = modules_newly_imported(
        "import glob, runpy\n"
        "from airflow.providers.common.compat.sdk import DAG, Asset, ObjectStoragePath, Param, task",
        f"for path in sorted(glob.glob({EXAMPLE_DAGS!r} + '/*.py')): runpy.run_path(path)",
        [
            "airflow_provider_wavespeed.hooks.wavespeed",
            "aiohttp",
            "wavespeed_emulator",
            "airflow_provider_wavespeed.triggers.prediction",
        ],
    )
    assert loaded == []


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_examples_are_tagged_and_explain_themselves(dag_id):
    dag = parse_examples().dags[dag_id]
    assert "wavespeed" in dag.tags
    source = Path(EXAMPLE_DAGS, f"{dag_id}.py").read_text()
    assert len(ast.get_docstring(ast.parse(source)) or "") > 200


def test_the_readmes_first_dag_parses_and_labels_each_dub_by_its_language(tmp_path: Path):
    readme = (Path(EXAMPLE_DAGS).parent / "README.md").read_text()
    first_dag = readme.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "readme_dag.py").write_text(first_dag)

    bag = dag_bag(str(tmp_path))

    assert bag.import_errors == {}
    lipsync = bag.dags["dub_interview"].get_task("lipsync")
    assert lipsync.partial_kwargs["video"] == "s3://media/interview.mp4"
    assert lipsync.partial_kwargs["map_index_template"] == "{{ task.media_label }}"
