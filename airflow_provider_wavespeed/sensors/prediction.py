"""PredictionSensor: wait for a WaveSpeed prediction that another task submitted."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_wavespeed.deferral import defer_until_prediction_ends
from airflow_provider_wavespeed.exceptions import WaveSpeedError
from airflow_provider_wavespeed.links import WaveSpeedOutputLink, first
from airflow_provider_wavespeed.outputs import (
    IfOutputExists,
    InputsDescription,
    check_if_output_exists,
    claim_output_file,
    plan_output,
    reusable_result,
    store_outputs,
)
from airflow_provider_wavespeed.polling import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL
from airflow_provider_wavespeed.xcoms import dag_task_ids

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_provider_wavespeed.models import Prediction


class PredictionSensor(BaseSensorOperator):
    """Wait until a WaveSpeed prediction completes; return its result dict through XCom.

    Pair it with ``WaveSpeedRunModelOperator`` / ``LipsyncOperator(wait_for_completion=False)``:
    ``request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}"``. A failed, cancelled,
    timed-out or deleted prediction fails the task with WaveSpeed's code and message.

    In poke or reschedule mode it checks every ``poke_interval`` seconds from a worker, and a check
    that fails for a transient reason (WaveSpeed down, a gateway error, a timeout) counts as "not
    done yet" until the sensor's ``timeout``. With
    ``deferrable=True`` (recommended) it waits in the triggerer on the adaptive schedule, from
    ``poke_interval`` up to ``max_poll_interval``.

    :param request_id: the prediction to wait for. Templated.
    :param wavespeed_conn_id: the Airflow connection holding the API key.
    :param deferrable: wait in the triggerer; the default follows ``[operators] default_deferrable``.
    :param max_poll_interval: the longest interval deferred checks back off to, in seconds.
    :param fail_on_nsfw: fail when WaveSpeed flags an output as NSFW.
    :param output_path: where to copy every output, with a provenance record, as the operators
        do (see :class:`~airflow_provider_wavespeed.operators.run_model.WaveSpeedRunModelOperator`).
        A sensor knows its prediction only by ``request_id``: an output stored there from the same
        request id is returned without waiting or downloading again. Templated.
    :param if_output_exists: ``skip_if_same_inputs`` (default; the same request id), ``overwrite``
        or ``fail``, as for the operators.
    """

    template_fields: Sequence[str] = ("request_id", "wavespeed_conn_id", "output_path")
    operator_extra_links = (WaveSpeedOutputLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        request_id: str,
        wavespeed_conn_id: str = "wavespeed_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        fail_on_nsfw: bool = False,
        output_path: Any = None,
        if_output_exists: IfOutputExists = "skip_if_same_inputs",
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        check_if_output_exists(if_output_exists)
        self.request_id = request_id
        self.wavespeed_conn_id = wavespeed_conn_id
        self.deferrable = deferrable
        self.max_poll_interval = max(float(max_poll_interval), float(poke_interval))
        self.fail_on_nsfw = fail_on_nsfw
        self.output_path = output_path
        self.if_output_exists: IfOutputExists = if_output_exists
        self.wavespeed_output: str | None = None  # what the extra link shows, set on the worker

    @cached_property
    def hook(self) -> WaveSpeedHook:
        from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

        return WaveSpeedHook(self.wavespeed_conn_id)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_provider_wavespeed.hooks.wavespeed import is_retryable_error

        try:
            prediction = self.hook.get_prediction(self.request_id)
        except WaveSpeedError as error:
            # An outage is not the prediction's end: the sensor's own timeout bounds the wait.
            if not is_retryable_error(error):
                raise
            self.log.warning("WaveSpeed did not answer for prediction %s (%s); checking again.", self.request_id, error)
            return False
        prediction.raise_for_failure()
        if not prediction.is_completed:
            self.log.info("WaveSpeed prediction %s is %s", self.request_id, prediction.status)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result(context, prediction))

    def execute(self, context: Context) -> Any:
        plan = plan_output(self.output_path)
        if plan is not None:
            claim_output_file(context, plan, dag_task_ids(context, self))
            stored = reusable_result(plan, self._inputs(), self.if_output_exists, context)
            if stored:
                self.wavespeed_output = first(stored.get("outputs")) or None
                return stored
        if not self.deferrable:
            return super().execute(context)
        prediction = self.hook.get_prediction(self.request_id)
        prediction.raise_for_failure()
        if prediction.is_completed:
            return self._result(context, prediction)
        defer_until_prediction_ends(
            self,
            prediction,
            wavespeed_conn_id=self.wavespeed_conn_id,
            timeout_seconds=float(self.timeout),
            poll_interval=float(self.poke_interval),
            max_poll_interval=self.max_poll_interval,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow_provider_wavespeed.triggers.prediction import prediction_from_event

        return self._result(context, prediction_from_event(event))

    def _inputs(self) -> InputsDescription:
        """All a sensor knows of what produced its prediction: the request id."""
        return InputsDescription(model="", inputs={"request_id": self.request_id})

    def _result(self, context: Context, prediction: Prediction) -> dict[str, Any]:
        prediction.raise_for_unusable_output(fail_on_nsfw=self.fail_on_nsfw)
        self.wavespeed_output = prediction.outputs[0]
        result = prediction.summary()
        plan = plan_output(self.output_path)
        if plan is not None:
            claim_output_file(context, plan, dag_task_ids(context, self), paid=prediction.id)
            result["stored_outputs"] = store_outputs(self.hook, plan, prediction, self._inputs(), result, context)
        return result
