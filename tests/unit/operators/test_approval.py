"""WaveSpeedSpendApprovalOperator: asks a person only over budget, and passes the predictions on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest

from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_1_PLUS
from airflow_provider_wavespeed.xcoms import COST_XCOM_KEY
from tests.helpers.airflow_context import make_context

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop operators need Airflow 3.1+")

PREDICTIONS = [{"video": "a.mp4", "audio": "a.fr.wav", "output_path": "out/a.fr.mp4"}]
OVER_BUDGET = {
    "within_budget": False,
    "count": 1,
    "model": "sync/lipsync-1.9.0-beta",
    "total": 0.25,
    "currency": "USD",
    "budget": 0.1,
    "quotes": [{"index": 0, "price": 0.25, "inputs": {"audio": "a.fr.wav"}}],
}
WITHIN_BUDGET = {**OVER_BUDGET, "within_budget": True, "budget": 1.0}


def operator() -> Any:
    from airflow_provider_wavespeed.operators.approval import WaveSpeedSpendApprovalOperator

    return WaveSpeedSpendApprovalOperator(task_id="approve_spend", budget_task_id="quote_dubs")


def context_with(cost: Any, *, try_number: int = 1) -> Any:
    context = make_context(try_number=try_number)
    context["ti"].xcom_pull.side_effect = lambda task_ids, key="return_value": (
        cost if key == COST_XCOM_KEY else PREDICTIONS
    )
    return context


def answer(option: str) -> dict[str, Any]:
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": datetime(2026, 12, 2, tzinfo=UTC),
        "responded_by_user": {"id": "1", "name": "editor"},
    }


@pytest.fixture
def asked():
    with mock.patch("airflow.providers.standard.operators.hitl.HITLOperator.execute") as execute:
        yield execute


def test_within_budget_it_passes_the_predictions_on_and_asks_nobody(asked):
    assert operator().execute(context_with(WITHIN_BUDGET)) == PREDICTIONS
    asked.assert_not_called()


def test_over_budget_it_asks_with_every_quote_in_the_question(asked):
    approval = operator()
    approval.execute(context_with(OVER_BUDGET))
    asked.assert_called_once()
    assert "**0.2500 USD** in all, above the budget of **0.1**" in approval.body
    assert "| 1 | 0.2500 | audio=`a.fr.wav` |" in approval.body


@pytest.mark.parametrize("cost", [None, {"total": 1.0}, "0.25"])
def test_without_the_budget_task_s_cost_it_fails_naming_budget_task_id(asked, cost):
    with pytest.raises(ValueError, match="Task 'quote_dubs' left no 'cost' XCom: budget_task_id must name"):
        operator().execute(context_with(cost))
    asked.assert_not_called()


@pytest.mark.parametrize(("try_number", "says_why"), [(1, False), (2, True)])
def test_a_retry_says_why_it_asks_again(asked, try_number, says_why):
    approval = operator()
    with mock.patch.object(type(approval), "log", new_callable=mock.PropertyMock) as log:
        approval.execute(context_with(OVER_BUDGET, try_number=try_number))
    warned = str(log.return_value.warning.call_args_list)
    assert ("Asking again: the previous try of this task ended without an answer reaching it" in warned) is says_why
    asked.assert_called_once()


def test_approve_passes_the_predictions_on():
    assert operator().execute_complete(context_with(OVER_BUDGET), answer("Approve")) == PREDICTIONS


def test_reject_passes_nothing_on():
    approval = operator()
    with mock.patch.object(type(approval), "skip") as skip:
        assert approval.execute_complete(context_with(OVER_BUDGET), answer("Reject")) is None
    skip.assert_not_called()  # no downstream task outside a DAG: ApprovalOperator has nothing to skip
