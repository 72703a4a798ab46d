"""Test set-up shared by every suite: an isolated AIRFLOW_HOME, connections from the environment."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

# Before Airflow is imported anywhere: never touch a developer's ~/airflow or a real database.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="wavespeed-tests-airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# Airflow 2's unit-test config picks the LocalExecutor, which refuses SQLite (dag.test() checks it for
# sensors) unless this flag of Airflow's own test suite is set; Airflow 3 has no such check.
os.environ.setdefault("_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK", "1")
# dag.test() on Airflow 3 runs a DAG from its DAG bundle: the tests' own DAGs and the examples.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DAGS = os.path.join(REPO, "tests", "integration", "dags")
EXAMPLE_DAGS = os.path.join(REPO, "example_dags")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = TEST_DAGS
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": path}}
        for name, path in (("provider-test-dags", TEST_DAGS), ("example-dags", EXAMPLE_DAGS))
    ]
)

pytest_plugins = ["tests.emulator_fixtures"]

TEST_API_KEY = "wsk-test-0123456789abcdef"


@pytest.fixture
def wavespeed_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define a WaveSpeed connection through ``AIRFLOW_CONN_*`` (no database needed)."""

    def define(
        *,
        host: str = "https://api.wavespeed.test",
        password: str = TEST_API_KEY,
        extra: dict[str, Any] | None = None,
        conn_id: str = "wavespeed_default",
        port: int | None = None,
    ) -> None:
        connection: dict[str, Any] = {"conn_type": "wavespeed", "host": host, "password": password}
        if port is not None:
            connection["port"] = port
        # Fast retries: the tests count attempts, they do not wait for real backoff.
        connection["extra"] = {"retry_delay": 0, **(extra or {})}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))

    return define


@pytest.fixture(autouse=True)
def _no_stray_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own key must never leak into a test run."""
    monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    monkeypatch.delenv("WAVESPEED_BASE_URL", raising=False)


@pytest.fixture(autouse=True)
def _fresh_model_catalog() -> None:
    """Every test fetches WaveSpeed's model catalog anew: the hook caches it per process for an hour."""
    from airflow_provider_wavespeed.hooks import wavespeed

    wavespeed._catalog_cache.clear()
