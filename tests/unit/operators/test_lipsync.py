"""LipsyncOperator and the WaveSpeedRunModelOperator it builds on, with the hook replaced."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionWaitTimeoutError,
    WaveSpeedError,
    WaveSpeedInputSchemaError,
    WaveSpeedNotFoundError,
)
from airflow_provider_wavespeed.models import CatalogModel
from airflow_provider_wavespeed.operators.lipsync import (
    LipsyncOperator,
    WaveSpeedRunModelOperator,
)
from airflow_provider_wavespeed.resume import STATE_KEY
from airflow_provider_wavespeed.sensors.prediction import PredictionSensor
from airflow_provider_wavespeed.triggers.prediction import PredictionTrigger
from tests.helpers.airflow_context import StateStore, make_context, pushed
from tests.helpers.api_answers import prediction
from tests.helpers.catalog import LIPSYNC
from tests.helpers.wavespeed_tasks import AUDIO, MP4_HEADER, PRICE_FIELDS, VIDEO, lipsync, parsed, submitting

# -- validation before anything is paid for -------------------------------------------------------


@pytest.mark.parametrize("sync_mode", ["fast", "", "CUT_OFF", None])
def test_a_literal_bad_sync_mode_fails_when_the_dag_is_parsed(sync_mode):
    with pytest.raises(ValueError, match=r"sync_mode=.* use one of bounce, loop, cut_off, silence, remap"):
        lipsync(sync_mode=sync_mode)


def test_a_templated_sync_mode_is_checked_at_execute(hook):
    operator = lipsync(sync_mode="{{ params.mode }}")
    operator.sync_mode = "sideways"  # as rendered
    with pytest.raises(ValueError, match="sync_mode='sideways'"):
        operator.execute(make_context())
    hook.submit.assert_not_called()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("video", None, "video is required"),
        ("audio", "  ", "audio is required"),
        ("video", "/no/such/file.mp4", "video: local file '/no/such/file.mp4' does not exist"),
        (
            "audio",
            "gopher://host/a.wav",
            "audio='gopher://host/a.wav' has the unsupported scheme 'gopher://'",
        ),
        ("video", "https://", "not a complete URL"),
        ("video", 42, "video=42 is a int"),
    ],
)
def test_bad_media_inputs_are_named_and_nothing_is_uploaded_or_submitted(hook, field, value, message):
    operator = lipsync(**{field: value})
    with pytest.raises(ValueError, match=message):
        operator.execute(make_context())
    hook.upload.assert_not_called()
    hook.submit.assert_not_called()


def test_a_directory_is_not_a_media_file(hook, tmp_path):
    with pytest.raises(ValueError, match="video: .* is not a regular file"):
        lipsync(video=str(tmp_path)).execute(make_context())
    hook.submit.assert_not_called()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"poll_interval": 10, "max_poll_interval": 5}, "max_poll_interval=5"),
        ({"timeout": -1}, "timeout=-1"),
    ],
)
def test_bad_waiting_arguments_fail_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lipsync(**kwargs)


def test_output_path_must_not_be_a_web_url(hook):
    with pytest.raises(ValueError, match="output_path='https://x.test/out/'"):
        lipsync(output_path="https://x.test/out/").execute(make_context())
    hook.submit.assert_not_called()


def test_inputs_that_render_to_a_string_are_explained(hook):
    operator = WaveSpeedRunModelOperator(task_id="run", model="wavespeed-ai/z-image/turbo", inputs="{{ x }}")
    operator.inputs = "not a dict"
    with pytest.raises(ValueError, match="render_template_as_native_obj"):
        operator.execute(make_context())


# -- the catalog's input schema, checked before any upload, quote or submit -----------------------


def test_inputs_the_schema_refuses_fail_before_any_upload_quote_or_submit(hook, tmp_path):
    local_video = tmp_path / "talk.mp4"
    local_video.write_bytes(MP4_HEADER + b"\x00" * 64)
    # The catalog's enum rules, not the provider's own list of modes: here it allows only cut_off.
    only_cut_off = {**LIPSYNC.properties, "sync_mode": {"type": "string", "enum": ["cut_off"]}}
    hook.get_catalog_model.return_value = CatalogModel(
        model=LIPSYNC.model, request_schema={**LIPSYNC.request_schema, "properties": only_cut_off}
    )
    operator = LipsyncOperator(task_id="lipsync", video=str(local_video), audio=AUDIO, sync_mode="bounce")

    with pytest.raises(WaveSpeedInputSchemaError, match="'bounce' is not one of cut_off"):
        operator.execute(make_context())

    hook.upload.assert_not_called()
    hook.get_price.assert_not_called()
    hook.submit.assert_not_called()


# -- submitting and waiting -----------------------------------------------------------------------


def test_deferrable_submit_pushes_the_id_at_once_then_defers_to_the_trigger(hook):
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("processing")
    context = make_context()

    with pytest.raises(TaskDeferred) as deferred:
        lipsync(deferrable=True, timeout=600, poll_interval=5, max_poll_interval=30).execute(context)

    hook.submit.assert_called_once_with(
        "sync/lipsync-1.9.0-beta",
        {"video": VIDEO, "audio": AUDIO, "sync_mode": "cut_off"},
        webhook=None,
    )
    assert pushed(context)["request_id"] == "req-1"
    assert context["task_state_store"].values == {STATE_KEY: "req-1"}
    trigger = deferred.value.trigger
    assert isinstance(trigger, PredictionTrigger)
    assert trigger.request_id == "req-1"
    assert (trigger.poll_interval, trigger.max_poll_interval) == (5.0, 30.0)
    assert deferred.value.method_name == "execute_complete"
    # The framework's timeout sits past the trigger's own deadline, so the trigger's event wins.
    assert deferred.value.timeout > timedelta(seconds=600)
    hook.wait_for_prediction.assert_not_called()


def test_a_prediction_already_done_at_the_first_check_is_not_deferred(hook):
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("completed")

    result = lipsync(deferrable=True).execute(make_context())

    assert result["status"] == "completed"
    assert result["outputs"] == ["https://cdn.test/out.mp4"]


def test_non_deferrable_waits_on_the_worker_and_returns_a_small_result(hook):
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("processing")
    hook.wait_for_prediction.return_value = parsed("completed", timings={"inference": 1234})
    context = make_context()

    result = lipsync(deferrable=False, timeout=300).execute(context)

    hook.wait_for_prediction.assert_called_once_with(
        "req-1", timeout=300.0, poll_interval=5.0, max_poll_interval=60.0, next_step=mock.ANY
    )
    assert "resumes that prediction without paying again" in hook.wait_for_prediction.call_args.kwargs["next_step"]
    assert result == {
        "request_id": "req-1",
        "model": "sync/lipsync-1.9.0-beta",
        "status": "completed",
        "outputs": ["https://cdn.test/out.mp4"],
        "has_nsfw_contents": [False],
        "inference_ms": 1234,
        "created_at": "2026-11-23T10:00:00+00:00",
        **PRICE_FIELDS,
    }
    # The id, the quote and the inputs' fingerprints; no URL that a browser could not open (the API's needs a key).
    assert set(pushed(context)) == {"request_id", "price", "wavespeed_inputs"}
    assert context["task_state_store"].values == {}  # forgotten once done


def test_wait_for_completion_false_returns_right_after_submit(hook):
    hook.submit.return_value = parsed("created")
    result = lipsync(wait_for_completion=False).execute(make_context())
    assert result["status"] == "created"
    hook.get_prediction.assert_not_called()


def test_local_media_is_uploaded_and_urls_pass_through(hook, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(MP4_HEADER)
    hook.upload.return_value = "https://cdn.test/uploads/clip.mp4"
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("completed")

    lipsync(video=str(video)).execute(make_context())

    hook.upload.assert_called_once_with(str(video))
    assert hook.submit.call_args.args[1]["video"] == "https://cdn.test/uploads/clip.mp4"
    assert hook.submit.call_args.args[1]["audio"] == AUDIO


@pytest.mark.parametrize(
    ("output_path", "outputs", "expected"),
    [
        ("{tmp}/dubbed/", ["https://cdn.test/a/output.mp4"], ["{tmp}/dubbed/req-1.mp4"]),
        (
            "{tmp}/dubbed/",
            ["https://cdn.test/a/output.mp4", "https://cdn.test/b/output.mp4"],
            ["{tmp}/dubbed/req-1_0.mp4", "{tmp}/dubbed/req-1_1.mp4"],
        ),
        ("{tmp}", ["https://cdn.test/a/output.mp4"], ["{tmp}/req-1.mp4"]),  # an existing directory
        ("file://{tmp}/talk.fr.mp4", ["https://cdn.test/a/output.mp4"], ["file://{tmp}/talk.fr.mp4"]),
        (
            "{tmp}/talk.fr.mp4",
            ["https://cdn.test/a/o.mp4", "https://cdn.test/b/o.mp4"],
            ["{tmp}/talk.fr_0.mp4", "{tmp}/talk.fr_1.mp4"],
        ),
    ],
)
def test_outputs_are_copied_to_output_path_under_unique_names(hook, tmp_path, output_path, outputs, expected):
    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("completed", outputs=outputs)
    hook.download.side_effect = lambda url, target: str(target)

    result = lipsync(output_path=output_path.format(tmp=tmp_path)).execute(make_context())

    assert result["stored_outputs"] == [path.format(tmp=tmp_path) for path in expected]


def test_outputs_to_an_object_storage_path(hook, tmp_path):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    hook.submit.return_value = parsed("created")
    hook.get_prediction.return_value = parsed("completed")
    hook.download.side_effect = lambda url, target: str(target)

    result = lipsync(output_path=ObjectStoragePath(f"file://{tmp_path}")).execute(make_context())

    assert result["stored_outputs"] == [f"file://{tmp_path}/req-1.mp4"]


# -- execute_complete -----------------------------------------------------------------------------


def test_execute_complete_on_success_returns_the_result(hook):
    event = {"status": "success", "request_id": "req-1", "prediction": prediction("completed")["data"]}
    context = make_context()
    context["task_state_store"].set(STATE_KEY, "req-1")

    result = lipsync().execute_complete(context, event)

    assert result["request_id"] == "req-1"
    assert context["task_state_store"].values == {}


def test_execute_complete_on_failure_keeps_the_record_so_a_retry_resubmits(hook):
    event = {"status": "failed", "request_id": "req-1", "prediction": prediction("failed", code=1402)["data"]}
    context = make_context()
    context["task_state_store"].set(STATE_KEY, "req-1")

    with pytest.raises(PredictionFailedError, match="1402"):
        lipsync().execute_complete(context, event)
    assert context["task_state_store"].values == {STATE_KEY: "req-1"}


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            {"status": "timeout", "request_id": "req-1", "last_status": "processing"},
            PredictionWaitTimeoutError,
        ),
        ({"status": "error", "request_id": "req-1", "message": "401"}, WaveSpeedError),
        (None, WaveSpeedError),
        ({"status": "mystery", "request_id": "req-1"}, WaveSpeedError),
    ],
)
def test_execute_complete_raises_for_every_other_event(hook, event, error):
    with pytest.raises(error):
        lipsync().execute_complete(make_context(), event)


def test_completed_without_outputs_fails_clearly(hook):
    event = {
        "status": "success",
        "request_id": "req-1",
        "prediction": prediction("completed", outputs=[])["data"],
    }
    with pytest.raises(WaveSpeedError, match="returned no outputs"):
        lipsync().execute_complete(make_context(), event)


def test_nsfw_output_fails_only_when_asked(hook):
    flagged = prediction("completed", has_nsfw_contents=[True])["data"]
    event = {"status": "success", "request_id": "req-1", "prediction": flagged}
    assert lipsync().execute_complete(make_context(), event)["has_nsfw_contents"] == [True]
    with pytest.raises(WaveSpeedError, match="NSFW"):
        lipsync(fail_on_nsfw=True).execute_complete(make_context(), event)


# -- retries resume instead of paying again -------------------------------------------------------


@pytest.mark.parametrize("earlier_status", ["created", "processing", "completed"])
def test_retry_resumes_the_earlier_prediction_instead_of_resubmitting(hook, earlier_status):
    store = StateStore()
    store.set(STATE_KEY, "req-1")
    hook.get_prediction.side_effect = [parsed(earlier_status), parsed("completed")]
    hook.wait_for_prediction.return_value = parsed("completed")

    result = lipsync(deferrable=False).execute(make_context(store))

    hook.submit.assert_not_called()
    assert result["request_id"] == "req-1"


def test_retry_after_a_failed_prediction_submits_a_new_one(hook):
    store = StateStore()
    store.set(STATE_KEY, "req-old")
    hook.get_prediction.side_effect = [parsed("failed", id="req-old"), parsed("completed")]
    hook.submit.return_value = parsed("created")

    lipsync().execute(make_context(store))

    hook.submit.assert_called_once()
    assert store.values == {}


def test_retry_whose_prediction_was_purged_submits_a_new_one(hook):
    store = StateStore()
    store.set(STATE_KEY, "req-old")
    hook.get_prediction.side_effect = [
        WaveSpeedNotFoundError("gone", http_status=404),
        parsed("completed"),
    ]
    hook.submit.return_value = parsed("created")

    lipsync().execute(make_context(store))

    hook.submit.assert_called_once()


def test_without_a_task_state_store_the_id_goes_into_a_variable(hook):
    context = make_context()
    del context["task_state_store"]
    hook.submit.side_effect = submitting(parsed("created"))
    hook.get_prediction.return_value = parsed("processing")
    variables: dict[str, str] = {}
    writes: list[tuple[str, str]] = []

    def set_variable(name: str, value: str, **_: Any) -> None:
        writes.append((name, value))
        variables[name] = value

    def delete_variable(name: str) -> None:
        writes.append((name, "<deleted>"))
        del variables[name]

    with mock.patch("airflow.providers.common.compat.sdk.Variable") as variable:
        variable.get.side_effect = lambda name, default: variables.get(name, default)
        variable.set.side_effect = set_variable
        variable.delete.side_effect = delete_variable
        with pytest.raises(TaskDeferred):
            lipsync(deferrable=True).execute(context)
    key = "wavespeed_request_id__dubbing__run-1__lipsync__-1"
    uncertain_key = "wavespeed_uncertain_submit__dubbing__run-1__lipsync__-1"
    # The uncertain submit is recorded before it is sent, then replaced by its request id.
    assert [name for name, _ in writes] == [uncertain_key, key, uncertain_key]
    assert json.loads(writes[0][1])["model"] == "sync/lipsync-1.9.0-beta"
    assert variables == {key: "req-1"}


def test_on_kill_names_the_prediction(hook, caplog):
    operator = lipsync()
    operator.request_id = "req-9"
    with mock.patch.object(type(operator), "log", new_callable=mock.PropertyMock) as log:
        operator.on_kill()
    assert "req-9" in str(log.return_value.warning.call_args)


def test_template_fields_cover_what_users_template():
    assert set(LipsyncOperator.template_fields) >= {"video", "audio", "sync_mode", "model", "output_path"}
    assert "inputs" in WaveSpeedRunModelOperator.template_fields
    assert "request_id" in PredictionSensor.template_fields
