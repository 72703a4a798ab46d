"""System tests: the example DAGs against the real WaveSpeed API, which costs money.

They run only when ``WAVESPEED_SYSTEM_TESTS=1`` and ``WAVESPEED_API_KEY`` are both set, and are
skipped otherwise, so ``make test`` and CI never reach the real API.
"""

from __future__ import annotations

import json
import os

import pytest

# Read at collection: the suite's autouse fixture removes WAVESPEED_API_KEY from every test's
# environment, so that a developer's key never reaches the other suites.
API_KEY = os.environ.get("WAVESPEED_API_KEY", "")
ENABLED = os.environ.get("WAVESPEED_SYSTEM_TESTS") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ENABLED and API_KEY:
        return
    required = (("WAVESPEED_SYSTEM_TESTS=1", ENABLED), ("WAVESPEED_API_KEY", API_KEY))
    missing = [name for name, given in required if not given]
    skip = pytest.mark.skip(
        reason=f"system test against the real WaveSpeed API (it costs money): set {' and '.join(missing)} to run it"
    )
    for item in items:
        if item.get_closest_marker("system"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database in the tests' own AIRFLOW_HOME, as `airflow db reset` makes it."""
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)


@pytest.fixture
def wavespeed_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``wavespeed_default`` connection with the real key and WaveSpeed's default base URL."""
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", json.dumps({"conn_type": "wavespeed", "password": API_KEY}))
