"""Remembering which prediction a task instance submitted, across its tries, and resuming it.

A retry (or a worker that died mid-wait) must not pay for a second prediction while the first is
still running or already done. The request id is written down right after the submit, before any
waiting, and read back at the start of the next try:

- Airflow 3.3+: the task state store (``context["task_state_store"]``), kept per task instance
  across tries. Clearing a task does not discard it (Airflow 3.3.2 clears it only on success,
  with ``[state_store] clear_on_success``).
- Older Airflow (2.11, 3.0-3.2) has no such store, and XComs are wiped at the start of each try,
  so the id goes into an Airflow Variable named ``wavespeed_request_id__<dag>__<run>__<task>__<map>``.
  Clearing a task does not delete that Variable: a cleared task whose prediction is still running
  or completed resumes it (delete the Variable to force a new prediction).

Both are deleted when the task succeeds.

Just before the submit is sent, its model and time are recorded the same way, as an *uncertain
submit* (``wavespeed_uncertain_submit``: sent, outcome unknown), and replaced by the request id
once it is answered. A submit whose answer was lost
(:class:`~airflow_provider_wavespeed.exceptions.WaveSpeedSubmissionUncertainError`), or a worker
that died before the id was written, leaves that record behind: a paid prediction may exist, and
the next try reconciles the record with WaveSpeed's prediction history before it may submit again
(:func:`reconcile_uncertain_submit`). So no window remains in which a retry pays twice
unknowingly; at worst it fails, naming the predictions that may be the lost one.

When a task's last try fails, the records nothing would use again are deleted
(:func:`settle_records_after_last_try`); those a clear would use (a prediction still to collect,
an uncertain submit) are kept, and the log says why.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    WaveSpeedError,
    WaveSpeedNotFoundError,
    WaveSpeedSubmissionUncertainError,
    resume_hint,
)
from airflow_provider_wavespeed.xcoms import REQUEST_ID_XCOM_KEY, pull_from_every_task_instance

if TYPE_CHECKING:
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_provider_wavespeed.models import Prediction

STATE_KEY = "wavespeed_request_id"
UNCERTAIN_STATE_KEY = "wavespeed_uncertain_submit"


class TaskLog(Protocol):
    """The task's logger (the operator's ``self.log``), where these messages belong."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


CLOCK_SKEW_MARGIN = timedelta(seconds=60)
"""How far before our own clock's submit time WaveSpeed's history is searched: its ``created_at``
comes from WaveSpeed's clock, which may run behind ours."""


@dataclass(frozen=True)
class UncertainSubmit:
    """A submit that was sent (or was about to be) but whose answer was not recorded: a paid prediction may exist.

    :param model: the model path it was for.
    :param submitted_at: ISO 8601 UTC time (the worker's clock) just before it was sent.
    """

    model: str
    submitted_at: str

    @property
    def search_from(self) -> str:
        """The ``created_after`` to look for it with, the clock-skew margin before ``submitted_at``."""
        return (datetime.fromisoformat(self.submitted_at) - CLOCK_SKEW_MARGIN).astimezone(UTC).isoformat()


class SubmittedPredictionRecord:
    """The request id a task instance submitted, stored where its next try can read it."""

    def __init__(self, context: Any) -> None:
        self._state_store = context.get("task_state_store")
        ti = context["ti"]
        self._task_instance = (str(ti.dag_id), str(ti.run_id), str(ti.task_id), str(getattr(ti, "map_index", -1)))

    @property
    def backend(self) -> str:
        """Where the id is kept: ``task_state_store`` or ``variable``."""
        return "task_state_store" if self._state_store is not None else "variable"

    def recall(self) -> str | None:
        """The request id an earlier try of this task instance submitted, if any."""
        value = self._get(STATE_KEY)
        return str(value) if value else None

    def remember(self, request_id: str) -> None:
        """Record the submitted prediction; it replaces the record of its uncertain submit."""
        self._set(
            STATE_KEY,
            request_id,
            "WaveSpeed prediction submitted by this task instance; lets a retry resume it instead of paying "
            "again. Deleted when the task succeeds.",
        )
        self.forget_uncertain()

    def recall_uncertain(self) -> UncertainSubmit | None:
        """The submit of an earlier try whose answer was never recorded, if any."""
        value = self._get(UNCERTAIN_STATE_KEY)
        if not value:
            return None
        data = json.loads(value) if isinstance(value, str) else value
        return UncertainSubmit(model=str(data["model"]), submitted_at=str(data["submitted_at"]))

    def remember_uncertain(self, uncertain: UncertainSubmit) -> None:
        self._set(
            UNCERTAIN_STATE_KEY,
            json.dumps({"model": uncertain.model, "submitted_at": uncertain.submitted_at}),
            "A WaveSpeed submit of this task instance whose answer is not recorded: the next try looks for the "
            "prediction it may have created before submitting again. Deleted when the task succeeds.",
        )

    def forget_uncertain(self) -> None:
        self._delete_if_present(UNCERTAIN_STATE_KEY)

    def forget(self) -> None:
        self._delete_if_present(STATE_KEY)
        self._delete_if_present(UNCERTAIN_STATE_KEY)

    def how_to_forget(self) -> str:
        """The one step a person takes to let the next try submit anew: a UI action, or an exact command."""
        dag_id, run_id, task_id, map_index = self._task_instance
        if self._state_store is not None:
            path = (
                f"api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                f"{quote(task_id, safe='')}/state-store"
            )
            return (
                f"delete the key '{UNCERTAIN_STATE_KEY}' from this task instance's state store, in the UI (the task "
                "instance's 'Task State Store' tab) or with the REST API: curl -X DELETE "
                f'"{_api_base_url()}/{path}/{UNCERTAIN_STATE_KEY}?map_index={map_index}" '
                '-H "Authorization: Bearer $AIRFLOW_TOKEN" (a token from POST /auth/token); then clear the task, '
                "or let its next retry run (clearing alone keeps the key)"
            )
        return (
            f"run `airflow variables delete {shlex.quote(self._variable_key(UNCERTAIN_STATE_KEY))}` (or delete that "
            "Variable "
            "under Admin > Variables in the UI); then clear the task, or let its next retry run (clearing alone "
            "keeps the Variable)"
        )

    # -- the two backends ---------------------------------------------------------------------------

    def _variable_key(self, key: str) -> str:
        return "__".join((key, *self._task_instance))

    def _get(self, key: str) -> Any:
        if self._state_store is not None:
            return self._state_store.get(key)
        from airflow.providers.common.compat.sdk import Variable

        # The default is passed by position: Airflow 2 names it ``default_var``, Airflow 3 ``default``.
        return Variable.get(self._variable_key(key), None)

    def _set(self, key: str, value: str, description: str) -> None:
        if self._state_store is not None:
            self._state_store.set(key, value)
            return
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(self._variable_key(key), value, description=description)

    def _delete_if_present(self, key: str) -> None:
        if self._state_store is not None:
            self._state_store.delete(key)
            return
        from airflow.providers.common.compat.sdk import Variable

        # Read first: most tries never write the uncertain-submit Variable, and a delete of a key
        # that is not there is not quiet on every Airflow line.
        if Variable.get(self._variable_key(key), None) is not None:
            Variable.delete(self._variable_key(key))


def _api_base_url() -> str:
    """Where this deployment's REST API answers, as configured (``[api] base_url``)."""
    from airflow.providers.common.compat.sdk import conf

    return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")


HISTORY_PAGE_SIZE = 100
"""WaveSpeed's largest page of prediction history."""
MAX_HISTORY_PAGES = 50
"""How far the search pages back (5,000 predictions) before it gives up rather than guess."""


def unclaimed_candidates(hook: WaveSpeedHook, uncertain: UncertainSubmit, claimed: set[str]) -> list[Prediction]:
    """WaveSpeed's predictions that may be the one an uncertain submit created.

    Every prediction of ``uncertain.model`` created since ``search_from`` except those in
    ``claimed``: ids other task instances recorded as their own, which therefore are not this one's.
    The list carries no inputs, so nothing else can tell two predictions of one model apart.

    The history is read newest first, page by page, until a page is empty or reaches back past
    ``search_from``: a short page is not taken as the end, in case the server pages smaller than
    asked. Whatever the server sends is filtered again here (model, creation time); a prediction
    without a creation time stays a candidate.

    :raises WaveSpeedError: the window holds more than ``MAX_HISTORY_PAGES`` pages (or the server
        ignores ``page``): the search gives up rather than call a resubmit safe.
    """
    search_from = datetime.fromisoformat(uncertain.search_from)
    candidates: list[Prediction] = []
    for page in range(1, MAX_HISTORY_PAGES + 1):
        found = hook.list_predictions(
            model=uncertain.model, created_after=uncertain.search_from, page=page, page_size=HISTORY_PAGE_SIZE
        )
        in_window = [
            prediction
            for prediction in found
            if prediction.model in (uncertain.model, "")
            and (prediction.created_at is None or prediction.created_at >= search_from)
        ]
        candidates += [prediction for prediction in in_window if prediction.id not in claimed]
        if not found or len(in_window) < len(found):
            return candidates
    raise WaveSpeedError(
        f"WaveSpeed's history of model '{uncertain.model}' since {uncertain.search_from} is longer than "
        f"{MAX_HISTORY_PAGES} pages, so whether an earlier try's submit created a prediction cannot be "
        "checked; nothing was submitted again. Find it in WaveSpeed's history and wait for it with "
        "PredictionSensor(request_id=...)."
    )


def resume_earlier_prediction(
    hook: WaveSpeedHook, record: SubmittedPredictionRecord, log: TaskLog
) -> Prediction | None:
    """The prediction an earlier try submitted, when it can still be collected; None when a new one is needed."""
    request_id = record.recall()
    if not request_id:
        return None
    try:
        earlier = hook.get_prediction(request_id)
    except WaveSpeedNotFoundError:
        log.warning(
            "An earlier try submitted WaveSpeed prediction %s, which WaveSpeed no longer knows; submitting a new one.",
            request_id,
        )
        return None
    if earlier.is_failed:
        log.warning(
            "An earlier try's WaveSpeed prediction %s ended '%s' (%s); submitting a new one.",
            request_id,
            earlier.status,
            earlier.error or "no error message",
        )
        return None
    log.info(
        "Resuming WaveSpeed prediction %s (%s) submitted by an earlier try, instead of paying for a new one "
        "(recorded in the %s).",
        request_id,
        earlier.status,
        record.backend,
    )
    return earlier


def reconcile_uncertain_submit(
    hook: WaveSpeedHook,
    record: SubmittedPredictionRecord,
    uncertain: UncertainSubmit,
    *,
    policy: str,
    claimed_by_others: set[str],
    log: TaskLog,
) -> None:
    """Return when an earlier try's uncertain submit may be followed by a new one; raise otherwise.

    With ``policy="resubmit"`` it always may. With ``"fail"`` only when WaveSpeed's history proves
    the uncertain submit created nothing: its history lists no inputs, so a prediction of the same
    model created since may be that submit's. Those in ``claimed_by_others`` (other task instances
    of this DAG run recorded them) and this task instance's own earlier prediction are not; any
    other one might be, and is never adopted blindly (it could be another DAG's).

    :raises WaveSpeedSubmissionUncertainError: a prediction that may be the uncertain submit's exists.
    """
    if policy == "resubmit":
        log.warning(
            "An earlier try's submit to WaveSpeed model '%s' at %s left no request id; it may have created a "
            "paid prediction. uncertain_submit='resubmit': submitting again, so WaveSpeed may charge for both.",
            uncertain.model,
            uncertain.submitted_at,
        )
        record.forget_uncertain()
        return
    candidates = unclaimed_candidates(hook, uncertain, claimed_by_others | {record.recall() or ""})
    if not candidates:
        log.warning(
            "An earlier try's submit to WaveSpeed model '%s' at %s left no request id (its answer was lost, "
            "or the try died while submitting). WaveSpeed lists no prediction of that model created since %s "
            "that another task claims, so that submit created nothing and submitting again is safe.",
            uncertain.model,
            uncertain.submitted_at,
            uncertain.search_from,
        )
        record.forget_uncertain()
        return
    shown = ", ".join(prediction.id for prediction in candidates[:20])
    more = f" and {len(candidates) - 20} more" if len(candidates) > 20 else ""
    raise WaveSpeedSubmissionUncertainError(
        f"An earlier try's submit to WaveSpeed model '{uncertain.model}' at {uncertain.submitted_at} left no "
        "request id (its answer was lost, or the try died while submitting), and WaveSpeed lists "
        f"{len(candidates)} prediction(s) of that model created since {uncertain.search_from} that no other "
        f"task of this DAG run claims: {shown}{more}. One of them may be this task's (other DAGs may use the "
        "model too); WaveSpeed's history shows no inputs, so it cannot be told apart, and nothing was "
        "submitted again (uncertain_submit='fail'). To submit a new prediction (paid; the lost one, if it "
        f"exists, stays billed): {record.how_to_forget()}. To never stop here, set uncertain_submit='resubmit'.",
        model=uncertain.model,
        submitted_at=uncertain.submitted_at,
    )


def request_ids_claimed_by_others(context: Any, task_ids: list[str], log: TaskLog) -> set[str]:
    """The request ids the tasks of this DAG run have pushed to XCom, at every map index."""
    try:
        pulled = pull_from_every_task_instance(context, task_ids, REQUEST_ID_XCOM_KEY)
        return {value for value in pulled if isinstance(value, str)}
    # Knowing fewer claimed ids only makes the check stricter (more candidates), never unsafe.
    except Exception:
        log.warning("Could not read the request ids of the other tasks of this run", exc_info=True)
        return set()


def is_last_try(context: Any, error: BaseException) -> bool:
    """Whether ``error`` fails the task for good: no retry follows it (a person may still clear the task).

    Airflow retries a task while ``try_number <= max_tries`` (``max_tries`` starts at the task's
    ``retries`` and grows when the task is cleared), never after an ``AirflowFailException``. When
    either number is unknown, a retry is assumed, which only keeps a record that may be needed.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    if isinstance(error, AirflowFailException):
        return True
    ti = context["ti"]
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(try_number, int) or not isinstance(max_tries, int):
        return False
    return not (max_tries and try_number <= max_tries)


def settle_records_after_last_try(
    hook: WaveSpeedHook, record: SubmittedPredictionRecord, error: BaseException, log: TaskLog
) -> None:
    """After the last try failed: delete the records nothing will use, keep the ones a clear would, and say which.

    Clearing the task runs it again with whatever record it finds. An uncertain submit is kept:
    without it a clear would submit again blindly, and could pay twice. A request id is kept while
    its prediction can still be collected (running, or completed but not stored): a clear resumes
    it without paying again. It is deleted when there is nothing to collect: the prediction failed
    on WaveSpeed's side, or WaveSpeed no longer knows it. When WaveSpeed cannot be asked, it is kept.
    """
    uncertain = record.recall_uncertain()
    if uncertain is not None:
        log.warning(
            "Kept the record of the uncertain submit to WaveSpeed model '%s' at %s (in the %s): clearing this task "
            "first looks in WaveSpeed's history for the prediction it may have created. To submit anew regardless "
            "(paid): %s.",
            uncertain.model,
            uncertain.submitted_at,
            record.backend,
            record.how_to_forget(),
        )
        return
    request_id = record.recall()
    if request_id is None:
        return
    ended_without_output = _ended_without_output(hook, request_id, error)
    if ended_without_output is None:
        log.warning(
            "Kept the record of WaveSpeed prediction %s (in the %s). %s",
            request_id,
            record.backend,
            resume_hint(request_id),
        )
        return
    record.forget()
    log.info(
        "WaveSpeed prediction %s %s, so there is nothing to collect: deleted its record (in the %s); clearing this "
        "task submits a new prediction.",
        request_id,
        ended_without_output,
        record.backend,
    )


def _ended_without_output(hook: WaveSpeedHook, request_id: str, error: BaseException) -> str | None:
    """How the prediction ended with nothing to collect (failed, unknown to WaveSpeed); None if it may not have."""
    if isinstance(error, PredictionFailedError) and error.request_id == request_id:
        return f"ended '{error.status}'"
    try:
        prediction = hook.get_prediction(request_id, retry=False)
    except WaveSpeedNotFoundError:
        return "is unknown to WaveSpeed"
    except WaveSpeedError:
        return None
    return f"ended '{prediction.status}'" if prediction.is_failed else None
