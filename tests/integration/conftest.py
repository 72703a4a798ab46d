"""Integration fixtures: a real Airflow metadata database (SQLite) and the emulator as the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.dag_runs import use_emulator
from wavespeed_emulator import WaveSpeedEmulator


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database in the tests' own AIRFLOW_HOME, as `airflow db reset` makes it."""
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)


@pytest.fixture
def lipsync_emulator(emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> WaveSpeedEmulator:
    """An emulator whose predictions take ~0.6 s, wired in as the ``wavespeed_default`` connection."""
    return use_emulator(monkeypatch, emulator_factory(prediction_seconds=(0.6, 0.6)), retry_delay=0)
