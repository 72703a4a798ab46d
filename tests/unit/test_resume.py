"""Resuming across tries: a submit whose request id was never recorded is looked for in WaveSpeed's history
before paying again, and the last try deletes the records nothing will use."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionWaitTimeoutError,
    WaveSpeedAuthError,
    WaveSpeedConnectionError,
    WaveSpeedError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedSubmissionUncertainError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from airflow_provider_wavespeed.resume import (
    STATE_KEY,
    UNCERTAIN_STATE_KEY,
    SubmittedPredictionRecord,
    UncertainSubmit,
    is_last_try,
)
from tests.helpers.airflow_context import StateStore, make_context, variables, without_state_store
from tests.helpers.api_answers import prediction
from tests.helpers.wavespeed_tasks import lipsync, parsed, replaced_hook, submitting

SUBMITTED_AT = "2026-11-20T10:00:00+00:00"
UNCERTAIN = UncertainSubmit(model="sync/lipsync-1.9.0-beta", submitted_at=SUBMITTED_AT)


@pytest.fixture
def hook():
    yield from replaced_hook(WaveSpeedRunModelOperator)


def lost_answer() -> WaveSpeedSubmissionUncertainError:
    return WaveSpeedSubmissionUncertainError("answer lost", model=UNCERTAIN.model, submitted_at=SUBMITTED_AT)


def listed(*request_ids: str) -> list[Any]:
    return [parsed("processing", id=request_id) for request_id in request_ids]


def store_with_uncertain_submit() -> StateStore:
    store = StateStore()
    SubmittedPredictionRecord(make_context(store)).remember_uncertain(UNCERTAIN)
    return store


def test_a_submit_is_recorded_as_uncertain_before_it_is_sent_and_kept_when_its_answer_is_lost(hook):
    store = StateStore()
    uncertain_at_send: list[Any] = []

    def submit(*args: Any, **kwargs: Any) -> Any:
        uncertain_at_send.append(store.values.get(UNCERTAIN_STATE_KEY))
        raise lost_answer()

    hook.submit.side_effect = submit

    with pytest.raises(WaveSpeedSubmissionUncertainError):
        lipsync().execute(make_context(store))

    # A worker killed during the submit leaves the same record behind as a lost answer does.
    assert uncertain_at_send == [store.values[UNCERTAIN_STATE_KEY]]
    recorded = json.loads(store.values[UNCERTAIN_STATE_KEY])
    assert recorded["model"] == UNCERTAIN.model
    assert datetime.fromisoformat(recorded["submitted_at"]) <= datetime.now(UTC)


def test_a_submit_the_hook_refuses_before_sending_leaves_no_uncertain_submit_record(hook):
    store = StateStore()
    hook.check_submission.side_effect = ValueError("webhook='ftp://x' must be an https URL")

    with pytest.raises(ValueError, match="webhook="):
        lipsync(webhook="ftp://x").execute(make_context(store))

    hook.submit.assert_not_called()
    assert UNCERTAIN_STATE_KEY not in store.values


def test_an_answer_the_parser_cannot_read_keeps_the_uncertain_submit_record(hook):
    # Whatever goes wrong after the request went out, a prediction may exist: only a refusal forgets.
    store = StateStore()
    hook.submit.side_effect = submitting(ValueError("a parser bug"))

    with pytest.raises(ValueError, match="a parser bug"):
        lipsync().execute(make_context(store))

    assert UNCERTAIN_STATE_KEY in store.values


@pytest.mark.parametrize(
    "refusal",
    [
        WaveSpeedAuthError("rejected", http_status=401),
        WaveSpeedRateLimitError("slow down", http_status=429),
        WaveSpeedConnectionError("could not connect", request_sent=False),
    ],
    ids=["401", "429", "never-connected"],
)
def test_a_submit_refused_or_never_sent_leaves_no_uncertain_submit_record(hook, refusal):
    store = StateStore()
    hook.submit.side_effect = submitting(refusal)

    with pytest.raises(type(refusal)):
        lipsync().execute(make_context(store))

    assert store.values == {}


def test_an_answered_submit_replaces_its_uncertain_submit_record_by_the_request_id(hook):
    store = StateStore()
    hook.submit.side_effect = submitting(parsed("created"))
    hook.get_prediction.return_value = parsed("processing")

    with pytest.raises(TaskDeferred):
        lipsync(deferrable=True).execute(make_context(store))

    assert store.values == {STATE_KEY: "req-1"}


def test_retry_resubmits_when_the_history_shows_no_prediction_since_the_lost_submit(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.return_value = []
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("completed")

    operator = lipsync()
    with mock.patch.object(type(operator), "log", new_callable=mock.PropertyMock) as log:
        result = operator.execute(make_context(store))

    assert result["request_id"] == "req-1"
    hook.submit.assert_called_once()
    hook.list_predictions.assert_called_once_with(
        model=UNCERTAIN.model, created_after="2026-11-20T09:59:00+00:00", page=1, page_size=100
    )
    assert UNCERTAIN_STATE_KEY not in store.values
    assert "submitting again is safe" in str(log.return_value.warning.call_args)


def test_retry_never_adopts_an_unclaimed_candidate_and_fails_naming_it(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-theirs", "req-maybe-ours"), []]
    context = make_context(store)
    context["ti"].xcom_pull.return_value = ["req-theirs", None]

    with pytest.raises(WaveSpeedSubmissionUncertainError) as failure:
        lipsync().execute(context)

    message = str(failure.value)
    assert "req-maybe-ours" in message
    assert "req-theirs" not in message, "a prediction another task claims is not a candidate"
    assert "delete the key 'wavespeed_uncertain_submit' from this task instance's state store" in message
    assert "'Task State Store' tab" in message
    assert (
        'curl -X DELETE "http://localhost:8080/api/v2/dags/dubbing/dagRuns/run-1/taskInstances/lipsync/'
        'state-store/wavespeed_uncertain_submit?map_index=-1" -H "Authorization: Bearer $AIRFLOW_TOKEN"'
    ) in message
    assert "uncertain_submit='resubmit'" in message
    hook.submit.assert_not_called()
    hook.upload.assert_not_called()
    assert UNCERTAIN_STATE_KEY in store.values, "the next try must look again"


def test_the_recovery_command_quotes_a_run_id_and_names_the_map_index(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-maybe-ours"), []]
    context = make_context(store)
    context["ti"].run_id = "manual__2026-11-20T10:00:00+00:00"
    context["ti"].map_index = 3
    context["ti"].xcom_pull.return_value = []

    with (
        mock.patch("airflow.providers.common.compat.sdk.conf.get", return_value="https://airflow.example/"),
        pytest.raises(WaveSpeedSubmissionUncertainError) as failure,
    ):
        lipsync().execute(context)

    assert (
        '"https://airflow.example/api/v2/dags/dubbing/dagRuns/manual__2026-11-20T10%3A00%3A00%2B00%3A00/'
        'taskInstances/lipsync/state-store/wavespeed_uncertain_submit?map_index=3"'
    ) in str(failure.value)


def test_before_airflow_3_3_the_recovery_is_one_variables_delete_command(hook):
    context = make_context()
    del context["task_state_store"]
    context["ti"].xcom_pull.return_value = []
    hook.list_predictions.side_effect = [listed("req-maybe-ours"), []]
    uncertain = json.dumps({"model": UNCERTAIN.model, "submitted_at": SUBMITTED_AT})
    with mock.patch("airflow.providers.common.compat.sdk.Variable") as variable:
        variable.get.side_effect = lambda key, default: uncertain if key.startswith("wavespeed_uncertain") else None
        with pytest.raises(WaveSpeedSubmissionUncertainError) as failure:
            lipsync().execute(context)

    assert "run `airflow variables delete wavespeed_uncertain_submit__dubbing__run-1__lipsync__-1`" in str(
        failure.value
    )


def test_resubmit_policy_submits_again_after_an_earlier_try_s_lost_answer_without_searching(hook):
    store = store_with_uncertain_submit()
    hook.submit.side_effect = submitting(parsed("created"))
    hook.get_prediction.return_value = parsed("completed")

    result = lipsync(uncertain_submit="resubmit").execute(make_context(store))

    assert result["request_id"] == "req-1"
    hook.list_predictions.assert_not_called()
    hook.submit.assert_called_once()
    assert store.values == {}


def test_resubmit_policy_submits_again_in_the_same_try_after_a_lost_answer(hook):
    store = StateStore()
    hook.submit.side_effect = [lost_answer(), parsed("created")]
    hook.get_prediction.return_value = parsed("completed")

    result = lipsync(uncertain_submit="resubmit").execute(make_context(store))

    assert result["request_id"] == "req-1"
    assert hook.submit.call_count == 2


def test_resubmit_policy_gives_up_after_a_bounded_number_of_lost_answers_in_one_try(hook):
    hook.submit.side_effect = submitting(lost_answer())

    with pytest.raises(WaveSpeedSubmissionUncertainError):
        lipsync(uncertain_submit="resubmit").execute(make_context(StateStore()))

    assert hook.submit.call_count == 3  # the first submit and RESUBMITS_PER_TRY more


def test_an_unknown_uncertain_submit_policy_is_rejected_naming_it():
    with pytest.raises(ValueError, match="uncertain_submit='retry' is not a policy; use 'fail'.*'resubmit'"):
        lipsync(uncertain_submit="retry")


def test_predictions_claimed_by_other_tasks_of_the_run_do_not_block_a_resubmit(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-a", "req-b"), []]
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("completed")
    context = make_context(store)
    context["ti"].xcom_pull.return_value = ["req-a", "req-b"]

    lipsync().execute(context)

    hook.submit.assert_called_once()
    assert context["ti"].xcom_pull.call_args.kwargs["key"] == "request_id"


def test_every_page_of_the_history_is_searched(hook):
    store = store_with_uncertain_submit()
    claimed = [f"req-{n}" for n in range(100)]
    hook.list_predictions.side_effect = [listed(*claimed), listed("req-unclaimed"), []]
    context = make_context(store)
    context["ti"].xcom_pull.return_value = claimed

    with pytest.raises(WaveSpeedSubmissionUncertainError, match="req-unclaimed"):
        lipsync().execute(context)

    assert [call.kwargs["page"] for call in hook.list_predictions.call_args_list] == [1, 2, 3]


def test_unreadable_claims_make_the_check_stricter_not_looser(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-a"), []]
    context = make_context(store)
    context["ti"].xcom_pull.side_effect = RuntimeError("execution API down")

    with pytest.raises(WaveSpeedSubmissionUncertainError, match="req-a"):
        lipsync().execute(context)

    hook.submit.assert_not_called()


def test_without_a_task_state_store_the_uncertain_submit_goes_into_a_variable(hook):
    context = make_context()
    del context["task_state_store"]
    hook.submit.side_effect = submitting(lost_answer())
    with mock.patch("airflow.providers.common.compat.sdk.Variable") as variable:
        variable.get.return_value = None
        with pytest.raises(WaveSpeedSubmissionUncertainError):
            lipsync().execute(context)

    key, value = variable.set.call_args.args
    assert key == "wavespeed_uncertain_submit__dubbing__run-1__lipsync__-1"
    assert json.loads(value)["model"] == UNCERTAIN.model


class LazySequence(Sequence[Any]):
    """What Airflow 2.11's xcom_pull returns for several tasks: a sequence, not a list."""

    def __init__(self, *values: Any) -> None:
        self._values = values

    def __getitem__(self, index: Any) -> Any:
        return self._values[index]

    def __len__(self) -> int:
        return len(self._values)


def test_claims_are_read_from_airflow_2s_lazy_sequence(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-a"), []]
    hook.submit.side_effect = submitting(parsed("created"))
    hook.get_prediction.return_value = parsed("completed")
    context = make_context(store)
    del context["ti"].get_ti_count  # Airflow 2.11's TaskInstance has none
    context["ti"].xcom_pull.return_value = LazySequence("req-a", None)

    lipsync().execute(context)

    hook.submit.assert_called_once()


def test_claims_are_pulled_at_every_map_index_on_the_task_sdk_before_3_3(hook, monkeypatch):
    # Before Airflow 3.3 the Task SDK's xcom_pull defaults to the caller's own map index only.
    monkeypatch.setattr("airflow_provider_wavespeed.xcoms.AIRFLOW_V_3_3_PLUS", False)
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-0", "req-2"), []]
    hook.submit.side_effect = submitting(parsed("created"))
    hook.get_prediction.return_value = parsed("completed")
    context = make_context(store)
    context["ti"].get_ti_count.return_value = 3
    context["ti"].xcom_pull.return_value = ["req-0", None, "req-2"]

    lipsync().execute(context)

    assert context["ti"].xcom_pull.call_args.kwargs["map_indexes"] == [-1, 0, 1, 2]
    hook.submit.assert_called_once()


def test_a_server_paging_smaller_than_asked_is_read_until_an_empty_page(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.side_effect = [listed("req-a"), listed("req-maybe-ours"), []]
    context = make_context(store)
    context["ti"].xcom_pull.return_value = ["req-a"]

    with pytest.raises(WaveSpeedSubmissionUncertainError, match="req-maybe-ours"):
        lipsync().execute(context)


def test_the_search_stops_at_the_first_prediction_older_than_the_window(hook):
    store = store_with_uncertain_submit()
    older = parsed("completed", id="req-old", created_at="2026-11-19T00:00:00Z")
    hook.list_predictions.side_effect = [[*listed("req-a"), older]]
    hook.submit.side_effect = submitting(parsed("created"))
    hook.get_prediction.return_value = parsed("completed")
    context = make_context(store)
    context["ti"].xcom_pull.return_value = ["req-a"]

    lipsync().execute(context)

    assert hook.list_predictions.call_count == 1
    hook.submit.assert_called_once()


def test_a_history_too_long_to_search_fails_instead_of_calling_a_resubmit_safe(hook):
    store = store_with_uncertain_submit()
    hook.list_predictions.return_value = listed("req-a")  # a server that ignores `page`
    context = make_context(store)
    context["ti"].xcom_pull.return_value = ["req-a"]

    with pytest.raises(WaveSpeedError, match="longer than 50 pages"):
        lipsync().execute(context)

    assert hook.list_predictions.call_count == 50
    hook.submit.assert_not_called()


def test_a_retry_resumes_its_prediction_even_if_an_input_is_gone(hook, tmp_path):
    # The inputs are checked only before a new submit: a vanished file must not cost the paid result.
    store = StateStore()
    store.set(STATE_KEY, "req-1")
    hook.get_prediction.return_value = parsed("completed")

    result = lipsync(video=str(tmp_path / "deleted.mp4")).execute(make_context(store))

    assert result["request_id"] == "req-1"
    hook.submit.assert_not_called()


def test_a_lost_answer_fails_the_try_with_the_one_step_that_lets_it_pay_again(hook):
    store = StateStore()
    hook.submit.side_effect = submitting(lost_answer())

    with pytest.raises(WaveSpeedSubmissionUncertainError) as failure:
        lipsync().execute(make_context(store))

    message = str(failure.value)
    assert "retrying or clearing this task first looks in WaveSpeed's history" in message
    assert "curl -X DELETE" in message and "state-store/wavespeed_uncertain_submit?map_index=-1" in message
    assert "PredictionSensor" not in message
    assert failure.value.model == UNCERTAIN.model and failure.value.submitted_at == SUBMITTED_AT


# -- the last try: records nothing will use are deleted, those a clear would use are kept -----------

REQUEST_ID_VARIABLE = "wavespeed_request_id__dubbing__run-1__lipsync__-1"
UNCERTAIN_VARIABLE = "wavespeed_uncertain_submit__dubbing__run-1__lipsync__-1"


def last_try() -> Any:
    """The context of a task's second and last try, before Airflow 3.3 (the records are Variables)."""
    return without_state_store(make_context(try_number=2, max_tries=1))


def logged_warnings(log: mock.PropertyMock) -> str:
    return "\n".join(call.args[0] % call.args[1:] for call in log.return_value.warning.call_args_list)


@pytest.mark.parametrize(
    ("try_number", "max_tries", "last"),
    [(1, 0, True), (1, 1, False), (2, 1, True), (3, 3, False), (4, 3, True)],
    ids=["no-retries", "retry-left", "retries-spent", "cleared-retry-left", "cleared-retries-spent"],
)
def test_the_last_try_is_the_one_after_which_airflow_does_not_retry(try_number, max_tries, last):
    context = make_context(try_number=try_number, max_tries=max_tries)

    assert is_last_try(context, RuntimeError("any failure")) is last


def test_an_airflow_fail_exception_is_always_the_last_try():
    from airflow.providers.common.compat.sdk import AirflowFailException

    assert is_last_try(make_context(try_number=1, max_tries=3), AirflowFailException("no retry")) is True


def test_without_try_numbers_a_retry_is_assumed_so_the_record_is_kept():
    context = make_context()
    del context["ti"].try_number

    assert is_last_try(context, RuntimeError("any failure")) is False


def test_the_last_try_of_a_prediction_that_failed_on_wavespeed_leaves_no_variable_behind(hook):
    event = {"status": "failed", "request_id": "req-1", "prediction": prediction("failed", code=1402)["data"]}

    with variables({REQUEST_ID_VARIABLE: "req-1"}) as held, pytest.raises(PredictionFailedError):
        lipsync().execute_complete(last_try(), event)

    assert held == {}
    hook.get_prediction.assert_not_called()  # the event said how it ended


def test_a_failed_prediction_with_a_retry_left_keeps_its_variable_for_the_retry(hook):
    event = {"status": "failed", "request_id": "req-1", "prediction": prediction("failed", code=1402)["data"]}

    with variables({REQUEST_ID_VARIABLE: "req-1"}) as held, pytest.raises(PredictionFailedError):
        lipsync().execute_complete(without_state_store(make_context(try_number=1, max_tries=1)), event)

    assert held == {REQUEST_ID_VARIABLE: "req-1"}


def test_the_last_try_keeps_a_completed_prediction_it_could_not_store_and_says_how_to_collect_it(hook, tmp_path):
    hook.get_prediction.return_value = parsed("completed")
    hook.download.side_effect = WaveSpeedConnectionError("the CDN dropped the download", request_sent=True)
    operator = lipsync(output_path=f"{tmp_path}/dubbed/")

    with (
        variables({REQUEST_ID_VARIABLE: "req-1"}) as held,
        mock.patch.object(type(operator), "log", new_callable=mock.PropertyMock) as log,
        pytest.raises(WaveSpeedConnectionError, match="clear this task and it resumes that prediction"),
    ):
        operator.execute(last_try())

    assert held == {REQUEST_ID_VARIABLE: "req-1"}, "a clear must collect the paid prediction, not pay again"
    hook.submit.assert_not_called()
    assert "Kept the record of WaveSpeed prediction req-1 (in the variable)" in logged_warnings(log)
    assert "resumes that prediction without paying again" in logged_warnings(log)


def test_the_last_try_keeps_a_prediction_still_running_when_the_wait_times_out(hook):
    hook.get_prediction.return_value = parsed("processing")
    hook.wait_for_prediction.side_effect = PredictionWaitTimeoutError(
        request_id="req-1", waited_seconds=7200, last_status="processing"
    )

    with variables({REQUEST_ID_VARIABLE: "req-1"}) as held, pytest.raises(PredictionWaitTimeoutError):
        lipsync(deferrable=False).execute(last_try())

    assert held == {REQUEST_ID_VARIABLE: "req-1"}


def test_the_last_try_keeps_an_uncertain_submit_so_that_a_clear_looks_before_paying(hook):
    hook.submit.side_effect = submitting(lost_answer())
    operator = lipsync()

    with (
        variables() as held,
        mock.patch.object(type(operator), "log", new_callable=mock.PropertyMock) as log,
        pytest.raises(WaveSpeedSubmissionUncertainError),
    ):
        operator.execute(last_try())

    assert set(held) == {UNCERTAIN_VARIABLE}
    assert "clearing this task first looks in WaveSpeed's history" in logged_warnings(log)
    assert f"airflow variables delete {UNCERTAIN_VARIABLE}" in logged_warnings(log)


def test_the_last_try_failing_before_it_pays_deletes_the_record_of_an_earlier_failed_prediction(hook):
    # The earlier try's prediction failed; this try fails on its inputs before submitting anything.
    hook.get_prediction.return_value = parsed("failed", id="req-old")
    operator = lipsync(sync_mode="{{ params.mode }}")
    operator.sync_mode = "sideways"  # as rendered

    with variables({REQUEST_ID_VARIABLE: "req-old"}) as held, pytest.raises(ValueError, match="sideways"):
        operator.execute(last_try())

    assert held == {}
    hook.submit.assert_not_called()


def test_the_last_try_deletes_the_record_of_a_prediction_wavespeed_no_longer_knows(hook):
    hook.get_prediction.side_effect = WaveSpeedNotFoundError("gone", http_status=404)
    operator = lipsync(sync_mode="{{ params.mode }}")
    operator.sync_mode = "sideways"

    with variables({REQUEST_ID_VARIABLE: "req-old"}) as held, pytest.raises(ValueError, match="sideways"):
        operator.execute(last_try())

    assert held == {}


def test_the_last_try_keeps_the_record_when_wavespeed_cannot_say_how_the_prediction_ended(hook):
    hook.get_prediction.return_value = parsed("processing")

    def outage_after_the_first_check(*args: Any, **kwargs: Any) -> Any:
        hook.get_prediction.side_effect = WaveSpeedUnavailableError("down", http_status=503)
        raise WaveSpeedAuthError("the key was revoked", http_status=401)

    hook.wait_for_prediction.side_effect = outage_after_the_first_check

    with variables({REQUEST_ID_VARIABLE: "req-1"}) as held, pytest.raises(WaveSpeedAuthError):
        lipsync(deferrable=False).execute(last_try())

    assert held == {REQUEST_ID_VARIABLE: "req-1"}


def test_the_last_try_settles_the_task_state_store_by_the_same_rule(hook):
    store = StateStore()
    store.set(STATE_KEY, "req-1")
    event = {"status": "failed", "request_id": "req-1", "prediction": prediction("failed")["data"]}

    with pytest.raises(PredictionFailedError):
        lipsync().execute_complete(make_context(store, try_number=1, max_tries=0), event)

    assert store.values == {}


def test_a_record_that_cannot_be_settled_never_hides_the_task_s_own_error(hook):
    event = {"status": "failed", "request_id": "req-1", "prediction": prediction("failed")["data"]}
    store = mock.MagicMock()
    store.get.side_effect = RuntimeError("the execution API is down")

    with pytest.raises(PredictionFailedError):
        lipsync().execute_complete(make_context(store, try_number=1, max_tries=0), event)
