"""Submits during an outage: a 503 means WaveSpeed did not process the request, so it is retried and
never becomes an uncertain submit, even in an account where other DAGs use the same model."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from airflow_provider_wavespeed.exceptions import WaveSpeedUnavailableError
from airflow_provider_wavespeed.operators.lipsync import LIPSYNC_MODEL, LipsyncOperator
from airflow_provider_wavespeed.resume import UNCERTAIN_STATE_KEY
from tests.helpers.airflow_context import StateStore, make_context
from tests.integration.dag_runs import use_emulator
from wavespeed_emulator import WaveSpeedEmulator
from wavespeed_emulator.outage import OutageMode, OutagePlan

pytestmark = pytest.mark.integration


def another_dag_submits(emulator: WaveSpeedEmulator, count: int) -> list[str]:
    """Predictions of the same model by someone else in the account: what makes a history search ambiguous."""
    ids = []
    for n in range(count):
        response = requests.post(
            f"{emulator.base_url}/api/v3/{LIPSYNC_MODEL}",
            json={"video": f"https://media.example/other-{n}.mp4", "audio": "https://media.example/other.wav"},
            headers={"Authorization": f"Bearer {emulator.api_key}"},
            timeout=30,
        )
        response.raise_for_status()
        ids.append(response.json()["data"]["id"])
    return ids


def lipsync() -> LipsyncOperator:
    return LipsyncOperator(
        task_id="lipsync",
        video="https://media.example/talk.mp4",
        audio="https://media.example/fr.wav",
        poll_interval=0.1,
        deferrable=False,
    )


def test_a_submit_answered_503_then_accepted_pays_once_and_leaves_no_uncertain_record_in_a_busy_account(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
):
    emulator: WaveSpeedEmulator = emulator_factory(prediction_seconds=(0.6, 0.6))
    use_emulator(monkeypatch, emulator, retry_delay=0.5)
    others = another_dag_submits(emulator, 3)
    store = StateStore()
    emulator.begin_outage(OutagePlan(OutageMode.UNAVAILABLE, seconds=2.0))

    result = lipsync().execute(make_context(store))

    stats = emulator.stats()
    assert stats["responses"]["503"] >= 1, "the outage answered the first requests (the quote, the submit)"
    assert result["status"] == "completed" and result["request_id"] not in others
    assert (stats["submits"], stats["duplicate_submits"], len(stats["predictions"])) == (4, 0, 4)
    assert UNCERTAIN_STATE_KEY not in store.values and store.values == {}


def test_a_try_that_ran_out_of_503_retries_leaves_no_uncertain_record_so_its_retry_submits_in_a_busy_account(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
):
    emulator: WaveSpeedEmulator = emulator_factory(prediction_seconds=(0.6, 0.6))
    use_emulator(monkeypatch, emulator, retry_delay=0.05, retry_limit=2)
    store = StateStore()
    emulator.begin_outage(OutagePlan(OutageMode.UNAVAILABLE, seconds=30.0))
    with pytest.raises(WaveSpeedUnavailableError, match="not processed"):
        lipsync().execute(make_context(store))
    assert store.values == {}, "a 503 created nothing, so nothing is uncertain"
    end_outage(emulator)
    others = another_dag_submits(emulator, 3)

    result = lipsync().execute(make_context(store))  # Airflow's retry: no candidates to trip over

    stats = emulator.stats()
    assert result["status"] == "completed" and result["request_id"] not in others
    assert (stats["submits"], stats["duplicate_submits"]) == (4, 0)


def end_outage(emulator: WaveSpeedEmulator) -> None:
    requests.delete(f"{emulator.base_url}/_emulator/outage", timeout=30).raise_for_status()
    deadline = time.monotonic() + 5
    while requests.get(f"{emulator.base_url}/api/v3/balance", timeout=5).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
