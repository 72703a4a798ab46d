"""A person approves a DAG run's WaveSpeed spend when its quote is over budget (Airflow 3.1+).

It is the standard provider's ``ApprovalOperator`` (human-in-the-loop), so import this module only
on Airflow 3.1+ (``version_compat.AIRFLOW_V_3_1_PLUS``); on older Airflow a run over budget stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_provider_wavespeed.operators.budget import spend_summary
from airflow_provider_wavespeed.xcoms import COST_XCOM_KEY

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class WaveSpeedSpendApprovalOperator(ApprovalOperator):
    """Ask a person to approve the spend a ``WaveSpeedBudgetOperator`` found over budget.

    Within budget it succeeds at once and asks nobody. Over budget it shows the quotes (the
    total and each prediction's price and inputs) and waits: Approve runs the downstream tasks,
    Reject skips them, as ``ApprovalOperator`` does. Place it between the budget task (with
    ``ask_approval_over_budget`` set) and the WaveSpeed tasks, and map those over its output: it
    returns the budget task's predictions once approved (or within budget). A mapped task is
    expanded as soon as the task it maps over has run, so mapping over the budget task itself
    would leave nothing for a Reject to skip. Give it a retry: Airflow 3.3 can fail the try that
    an early answer resumes, and a retry asks again (docs/cost.md).

    :param budget_task_id: the ``WaveSpeedBudgetOperator`` whose quote is to be approved.
    :param subject: the headline shown in the Airflow UI's Required Actions.
    """

    approves_wavespeed_spend = True

    def __init__(
        self, *, budget_task_id: str, subject: str = "Approve this run's WaveSpeed spend over budget", **kwargs: Any
    ) -> None:
        super().__init__(subject=subject, **kwargs)
        self.budget_task_id = budget_task_id

    def execute(self, context: Context) -> Any:
        cost = context["ti"].xcom_pull(task_ids=self.budget_task_id, key=COST_XCOM_KEY)
        if not isinstance(cost, dict) or "within_budget" not in cost:
            raise ValueError(
                f"Task '{self.budget_task_id}' left no '{COST_XCOM_KEY}' XCom: budget_task_id must name the "
                "WaveSpeedBudgetOperator upstream of this task."
            )
        if cost["within_budget"]:
            self.log.info(
                "The run's WaveSpeed quote of %.4f %s is within budget; no approval needed.",
                cost["total"],
                cost["currency"],
            )
            return self._approved_predictions(context)
        if context["ti"].try_number > 1:
            self.log.warning(
                "Asking again: the previous try of this task ended without an answer reaching it. On "
                "Airflow 3.3 an answer given within seconds of the question can be lost (the scheduler "
                "fails the resumed try as a 'state mismatch'); nothing was submitted or paid for."
            )
        self.body = spend_summary(cost)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Reject skips the downstream tasks (as ``ApprovalOperator`` does); Approve passes the predictions on."""
        answer = super().execute_complete(context=context, event=event)
        if answer["chosen_options"][0] != self.APPROVE:
            return None
        return self._approved_predictions(context)

    def _approved_predictions(self, context: Context) -> Any:
        return context["ti"].xcom_pull(task_ids=self.budget_task_id)
