"""WaveSpeedRunModelOperator: run any WaveSpeed model, paying once per prediction.

DAG files import this module at every parse, so it imports no HTTP client: the hook and the
trigger are imported when a task runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_wavespeed.deferral import defer_until_prediction_ends
from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionOutputError,
    PredictionWaitTimeoutError,
    WaveSpeedAPIError,
    WaveSpeedConnectionError,
    WaveSpeedCostError,
    WaveSpeedError,
    WaveSpeedInputSchemaError,
    WaveSpeedNotFoundError,
    WaveSpeedSubmissionUncertainError,
    resume_hint,
)
from airflow_provider_wavespeed.links import StoredOutputLink, WaveSpeedOutputLink, first
from airflow_provider_wavespeed.media import (
    check_readable_file,
    check_storage_file,
    is_http_url,
    local_path_of,
    path_text,
    url_scheme,
)
from airflow_provider_wavespeed.outputs import (
    IfOutputExists,
    InputsDescription,
    check_if_output_exists,
    check_mapped_output_path,
    claim_output_file,
    describe_inputs,
    plan_output,
    reusable_result,
    store_outputs,
)
from airflow_provider_wavespeed.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    check_poll_intervals,
)
from airflow_provider_wavespeed.resume import (
    SubmittedPredictionRecord,
    UncertainSubmit,
    is_last_try,
    reconcile_uncertain_submit,
    request_ids_claimed_by_others,
    resume_earlier_prediction,
    settle_records_after_last_try,
)
from airflow_provider_wavespeed.xcoms import INPUTS_XCOM_KEY, PRICE_XCOM_KEY, REQUEST_ID_XCOM_KEY, dag_task_ids

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from airflow_provider_wavespeed.content import MediaContent
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_provider_wavespeed.models import ModelPrice, Prediction

UNCERTAIN_SUBMIT_POLICIES = ("fail", "resubmit")
"""What a task does about a submit whose answer was lost (see :class:`WaveSpeedRunModelOperator`)."""
RESUBMITS_PER_TRY = 2
"""With ``uncertain_submit="resubmit"``, how often one try submits again after lost answers."""

DEFAULT_TIMEOUT = timedelta(hours=2)


class WaveSpeedRunModelOperator(BaseOperator):
    """Run any WaveSpeed model: submit a prediction and, by default, wait for it.

    The prediction is submitted on the worker, its id pushed to XCom (``request_id``) at once and
    recorded so that a retry resumes it instead of paying for another (see
    :mod:`airflow_provider_wavespeed.resume`). Waiting is deferrable (recommended: no worker slot
    is held while the model runs) or polls on the worker.

    Before it pays, it checks the inputs against the model's ``request_schema`` in WaveSpeed's
    catalog and, once the media are uploaded, asks WaveSpeed for the price
    (``POST /api/v3/model/price``), logs it and pushes it to XCom (``price``); ``max_price`` and
    ``min_balance_after`` stop it there (see docs/cost.md).

    Returns (through XCom) a small dict: ``request_id``, ``model``, ``status``, ``outputs`` (URLs),
    ``stored_outputs`` (with ``output_path``), ``has_nsfw_contents``, ``inference_ms``, and the
    cost: ``price`` (the discounted price WaveSpeed charges), ``list_price`` and ``currency``
    (None when the task resumed a prediction an earlier try had quoted and logged).

    :param model: the model path, e.g. ``sync/lipsync-1.9.0-beta``. Templated.
    :param inputs: the model's inputs. Templated.
    :param media_inputs: names of inputs that hold media: a local path, ``file://`` or
        object-storage URI (``s3://``, ``gs://``, ...) there is uploaded (streamed) and replaced by
        its URL; an http(s) URL is passed through.
    :param wavespeed_conn_id: the Airflow connection holding the API key.
    :param wait_for_completion: wait for the prediction to end (else return right after submit and
        wait downstream with :class:`~airflow_provider_wavespeed.sensors.prediction.PredictionSensor`).
    :param deferrable: wait in the triggerer instead of on a worker. Recommended; the default
        follows ``[operators] default_deferrable``.
    :param poll_interval: the first interval between status checks, in seconds.
    :param max_poll_interval: the longest interval checks back off to, in seconds.
    :param timeout: how long to wait for the prediction (seconds or timedelta).
    :param output_path: where to copy every output, streamed, because WaveSpeed deletes outputs
        after 7 days: local, ``file://``, object storage (``s3://...``) or an ``ObjectStoragePath``.
        A directory (written with a trailing ``/``, or existing) receives ``<request_id>[_<n>].<ext>``;
        any other path is the file itself and needs a file extension (``<stem>_<n><ext>`` for several
        outputs). Each output gets a provenance record, ``<output>.wavespeed.json``. Templated.
    :param if_output_exists: what a run does when ``output_path`` already holds an output:
        ``skip_if_same_inputs`` (default: made from the same model, media content and options, it
        is returned without uploading or submitting anything; else replaced), ``overwrite`` (always
        pay for a new one) or ``fail`` (refuse, before anything is paid for).
    :param fail_on_nsfw: fail when WaveSpeed flags an output as NSFW.
    :param webhook: an https URL WaveSpeed POSTs the result to when the prediction ends. Templated.
    :param max_price: the most one prediction may cost (in the quote's currency, USD); a higher
        quote fails the task before anything is submitted.
    :param min_balance_after: read the balance before submitting and fail unless it stays at least
        this much after paying the quote (None: no balance read; WaveSpeed itself refuses a submit
        the balance cannot cover).
    :param allow_unlisted_model: submit a model that WaveSpeed's catalog does not list (one newer
        than the catalog), without the input check. By default such a model fails before paying.
    :param uncertain_submit: what to do about a submit that was sent but whose answer was lost
        (a 500, 502 or 504, a timeout or a dropped connection after sending), so that a paid
        prediction may exist. ``"fail"`` (default) never pays twice: the task fails, and its next
        try submits again only once WaveSpeed's history proves that nothing was created; otherwise
        it fails naming the candidates and the one command that lets it submit anew.
        ``"resubmit"`` is at-least-once: the task submits again (at most twice per try), accepting
        a possible second charge over a stuck pipeline. A 429 or 503 is never uncertain: WaveSpeed
        did not process the request, and the submit is retried with backoff.
    """

    template_fields: Sequence[str] = ("model", "inputs", "output_path", "webhook", "wavespeed_conn_id")
    template_fields_renderers = {"inputs": "json"}
    operator_extra_links = (StoredOutputLink(), WaveSpeedOutputLink())
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        model: str,
        inputs: Mapping[str, Any] | str,
        media_inputs: Sequence[str] = (),
        wavespeed_conn_id: str = "wavespeed_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        output_path: Any = None,
        fail_on_nsfw: bool = False,
        webhook: str | None = None,
        if_output_exists: IfOutputExists = "skip_if_same_inputs",
        max_price: float | None = None,
        min_balance_after: float | None = None,
        allow_unlisted_model: bool = False,
        uncertain_submit: str = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, amount in (("max_price", max_price), ("min_balance_after", min_balance_after)):
            if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, float))):
                raise ValueError(f"{name}={amount!r} must be an amount in USD (a number) or None")
        if max_price is not None and max_price < 0:
            raise ValueError(f"max_price={max_price!r} must not be negative")
        check_poll_intervals(poll_interval, max_poll_interval)
        if uncertain_submit not in UNCERTAIN_SUBMIT_POLICIES:
            raise ValueError(
                f"uncertain_submit={uncertain_submit!r} is not a policy; use 'fail' (never pay twice: fail and "
                "say how to go on) or 'resubmit' (submit again, accepting a possible second charge)"
            )
        check_if_output_exists(if_output_exists)
        timeout_seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if not timeout_seconds > 0:
            raise ValueError(f"timeout={timeout!r} must be a positive duration (seconds or timedelta)")
        if not isinstance(inputs, (Mapping, str)):
            raise ValueError(f"inputs must be a mapping of input names to values, got {type(inputs).__name__}")
        self.model = model
        self.inputs = inputs
        self.media_inputs = tuple(media_inputs)
        self.wavespeed_conn_id = wavespeed_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self.timeout_seconds = timeout_seconds
        self.output_path = output_path
        self.fail_on_nsfw = fail_on_nsfw
        self.webhook = webhook
        self.if_output_exists: IfOutputExists = if_output_exists
        self.max_price = max_price
        self.min_balance_after = min_balance_after
        self.allow_unlisted_model = allow_unlisted_model
        self.uncertain_submit = uncertain_submit
        self.request_id: str | None = None
        self.quote: ModelPrice | None = None
        self.result: dict[str, Any] | None = None
        self._media_contents: dict[str, MediaContent] = {}
        self._inputs: InputsDescription | None = None
        # What the extra links show, set on the worker once the prediction's outputs are known.
        self.wavespeed_output: str | None = None
        self.stored_output: str | None = None

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Map the operator; a literal output file shared by every map index fails here, at parse time."""
        check_mapped_output_path(kwargs.get("output_path"), task_id=kwargs.get("task_id"))
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> WaveSpeedHook:
        from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

        return WaveSpeedHook(self.wavespeed_conn_id)

    def rendered_inputs(self) -> Any:
        """The model's inputs as rendered, before any check."""
        return self.inputs

    def model_inputs(self) -> dict[str, Any]:
        """The rendered inputs, checked; raises ValueError naming the field before anything is paid."""
        rendered = self.rendered_inputs()
        if not isinstance(rendered, Mapping):
            raise ValueError(
                f"inputs rendered to {type(rendered).__name__} {rendered!r}; it must be a mapping "
                "(use render_template_as_native_obj=True on the DAG to template a whole dict)"
            )
        inputs = dict(rendered)
        for field in self.media_inputs:
            _check_media_input(field, inputs.get(field))
        return inputs

    # -- execution --------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        record = SubmittedPredictionRecord(context)
        with self._records_settled_if_the_last_try_fails(context, record):
            plan = plan_output(self.output_path)
            if plan is not None:
                claim_output_file(context, plan, dag_task_ids(context, self))
            # A retry resumes its paid prediction even if an input has gone since (or storage is down);
            # the inputs are checked, before anything is paid for, only when there is something to submit.
            prediction = resume_earlier_prediction(self.hook, record, self.log)
            if prediction is None:
                inputs = self.model_inputs()
                self._inputs = self._describe(inputs)
                context["ti"].xcom_push(key=INPUTS_XCOM_KEY, value=self._inputs.to_json())
                stored = plan and reusable_result(plan, self._inputs, self.if_output_exists, context)
                if stored:
                    return self._reuse(context, stored, record)
                prediction = self._submit(inputs, record, context)
            self.request_id = prediction.id
            context["ti"].xcom_push(key=REQUEST_ID_XCOM_KEY, value=prediction.id)
            if not self.wait_for_completion:
                record.forget()
                return {**prediction.summary(), **self._price_fields(_quote_dict(self.quote))}
            quote = _quote_dict(self.quote)
            with _resume_hint_on_failure(prediction.id):
                prediction = self._current_state(prediction)
                if prediction.is_terminal:
                    return self._finish(context, prediction, record, quote)
                if self.deferrable:
                    defer_until_prediction_ends(
                        self,
                        prediction,
                        wavespeed_conn_id=self.wavespeed_conn_id,
                        timeout_seconds=self.timeout_seconds,
                        poll_interval=self.poll_interval,
                        max_poll_interval=self.max_poll_interval,
                    )
                completed = self.hook.wait_for_prediction(
                    prediction.id,
                    timeout=self.timeout_seconds,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    next_step=f"{resume_hint(prediction.id)} Or raise the task's timeout.",
                )
                return self._finish(context, completed, record, quote)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: validate its event, then finish like ``execute``."""
        from airflow_provider_wavespeed.triggers.prediction import prediction_from_event

        if isinstance(event, dict) and isinstance(event.get("request_id"), str):
            self.request_id = event["request_id"]  # known before validating, for a failed prediction's lineage
        record = SubmittedPredictionRecord(context)
        with self._records_settled_if_the_last_try_fails(context, record):
            prediction = prediction_from_event(event)
            self.request_id = prediction.id
            with _resume_hint_on_failure(prediction.id):
                return self._finish(context, prediction, record, _pulled_quote(context))

    def on_kill(self) -> None:
        if self.request_id:
            self.log.warning(
                "Task killed: WaveSpeed has no cancel API, so the prediction runs on. %s",
                resume_hint(self.request_id),
            )

    @contextmanager
    def _records_settled_if_the_last_try_fails(
        self, context: Context, record: SubmittedPredictionRecord
    ) -> Iterator[None]:
        """When a failure leaves no retry, delete the records no clear would use (see :mod:`.resume`)."""
        try:
            yield
        except Exception as error:
            if is_last_try(context, error):
                try:
                    settle_records_after_last_try(self.hook, record, error, self.log)
                # The task's own error is what it fails with; a record left behind costs nothing but a Variable.
                except Exception:
                    self.log.warning("Could not settle this task instance's WaveSpeed records", exc_info=True)
            raise

    def _current_state(self, prediction: Prediction) -> Prediction:
        """The prediction as WaveSpeed describes it now, or as submitted while WaveSpeed does not answer.

        The wait that follows rides out outages; this one check must not fail the task before it.
        """
        from airflow_provider_wavespeed.hooks.wavespeed import is_retryable_error

        if prediction.is_terminal:
            return prediction
        try:
            return self.hook.get_prediction(prediction.id, retry=False)
        except WaveSpeedError as error:
            if not is_retryable_error(error):
                raise
            self.log.warning(
                "WaveSpeed did not answer the first status check of prediction %s (%s); waiting for it anyway.",
                prediction.id,
                error,
            )
            return prediction

    # -- OpenLineage (the openlineage extra), called by its provider's listener --------------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        from airflow_provider_wavespeed.openlineage import lineage_on_start

        return lineage_on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow_provider_wavespeed.openlineage import lineage_on_complete

        return lineage_on_complete(self)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        from airflow_provider_wavespeed.openlineage import lineage_on_failure

        return lineage_on_failure(self)

    def _describe(self, inputs: dict[str, Any]) -> InputsDescription:
        """Read every media input to upload once (its content hash, its container) before anything is paid."""
        from airflow_provider_wavespeed.content import read_media_content

        self._media_contents = {
            field: read_media_content(inputs[field], field=field)
            for field in self.media_inputs
            if not is_http_url(inputs[field])
        }
        return describe_inputs(self.model, inputs, self._media_contents, self.media_inputs)

    def _reuse(self, context: Context, stored: dict[str, Any], record: SubmittedPredictionRecord) -> dict[str, Any]:
        """Finish with an output stored earlier from the same inputs: nothing uploaded, submitted or downloaded."""
        self.request_id = stored.get("request_id")
        context["ti"].xcom_push(key=REQUEST_ID_XCOM_KEY, value=self.request_id)
        self.wavespeed_output = first(stored.get("outputs")) or None
        self.stored_output = first(stored.get("stored_outputs")) or None
        record.forget()
        return stored

    def _inputs_description(self, context: Context) -> InputsDescription | None:
        """This try's inputs as described before the submit (XCom, across a deferral), else read again."""
        if self._inputs is not None:
            return self._inputs
        ti = context["ti"]
        pushed = ti.xcom_pull(task_ids=ti.task_id, key=INPUTS_XCOM_KEY, map_indexes=ti.map_index)
        if isinstance(pushed, Mapping):
            return InputsDescription.from_json(pushed)
        try:
            return self._describe(self.model_inputs())
        except (ValueError, OSError) as error:
            self.log.warning(
                "The inputs cannot be read again (%s): the provenance record of the output has no inputs "
                "fingerprint, so a re-run pays for a new prediction.",
                error,
            )
            return None

    def _submit(self, inputs: dict[str, Any], record: SubmittedPredictionRecord, context: Context) -> Prediction:
        from airflow_provider_wavespeed.uploads import UploadCache, upload_once

        uncertain = record.recall_uncertain()
        if uncertain is not None:
            reconcile_uncertain_submit(
                self.hook,
                record,
                uncertain,
                policy=self.uncertain_submit,
                claimed_by_others=request_ids_claimed_by_others(context, dag_task_ids(context, self), self.log),
                log=self.log,
            )
        self._check_against_catalog(inputs)
        if self._media_contents:
            cache = UploadCache(self.hook.base_url)
            for field, content in self._media_contents.items():
                inputs[field] = upload_once(self.hook, inputs[field], content, cache)
        self.quote = self._quote_within_limits(inputs)
        context["ti"].xcom_push(key=PRICE_XCOM_KEY, value=_quote_dict(self.quote))

        # Checked once, before anything is recorded: a submit these checks refuse is never sent.
        self.hook.check_submission(self.model, inputs, webhook=self.webhook)
        resubmits = RESUBMITS_PER_TRY if self.uncertain_submit == "resubmit" else 0
        while True:
            # Written just before the request goes out, and replaced by the request id once it is answered:
            # if the answer is lost, or the worker dies before the id is recorded, the retry looks before
            # it pays again.
            record.remember_uncertain(UncertainSubmit(model=self.model, submitted_at=datetime.now(UTC).isoformat()))
            try:
                prediction = self.hook.submit(self.model, inputs, webhook=self.webhook)
            except WaveSpeedAPIError:
                record.forget_uncertain()  # WaveSpeed answered that it refused it: nothing was created
                raise
            except WaveSpeedConnectionError as error:
                if not error.request_sent:
                    record.forget_uncertain()
                raise
            except WaveSpeedSubmissionUncertainError as error:
                if self.uncertain_submit == "fail":
                    raise WaveSpeedSubmissionUncertainError(
                        f"Submitting to WaveSpeed model '{error.model}' at {error.submitted_at} may have created a "
                        f"paid prediction: the request was sent but its answer was lost ({error.__cause__ or error}). "
                        "With "
                        "uncertain_submit='fail' it is never sent again blindly: retrying or clearing "
                        "this task first looks in WaveSpeed's history and submits again only if that submit "
                        f"provably created nothing. To submit a new prediction regardless (paid): "
                        f"{record.how_to_forget()}. To never stop here, set uncertain_submit='resubmit'.",
                        model=error.model,
                        submitted_at=error.submitted_at,
                    ) from error
                if resubmits == 0:
                    raise
                resubmits -= 1
                self.log.warning(
                    "%s uncertain_submit='resubmit': submitting again, so WaveSpeed may charge for both.", error
                )
                continue
            record.remember(prediction.id)
            return prediction

    def _check_against_catalog(self, inputs: dict[str, Any]) -> None:
        """Fail before anything is uploaded or paid if the catalog lacks the model or its schema refuses the inputs."""
        from airflow_provider_wavespeed.schema import check_inputs

        entry = self.hook.get_catalog_model(self.model)
        if entry is None:
            if self.allow_unlisted_model:
                self.log.warning(
                    "WaveSpeed's catalog does not list model '%s'; submitting it unchecked (allow_unlisted_model).",
                    self.model,
                )
                return
            raise WaveSpeedInputSchemaError(
                f"WaveSpeed's model catalog (GET /api/v3/models) does not list model '{self.model}'; nothing was "
                "uploaded or paid for. Check the model path ('owner/model' as on wavespeed.ai/models), or, for a "
                "model newer than the catalog, set allow_unlisted_model=True to submit it without the input check.",
                model=self.model,
                field="model",
            )
        check_inputs(entry, inputs, media_inputs=self.media_inputs)

    def _quote_within_limits(self, inputs: dict[str, Any]) -> ModelPrice:
        """Quote the final inputs, log the quote, and raise :class:`WaveSpeedCostError` above a limit."""
        quote = self.hook.get_price(self.model, inputs)
        self.log.info(
            "WaveSpeed quotes %s for this prediction of '%s' (%s)",
            quote.describe(),
            self.model,
            self.cost_basis(inputs),
        )
        if self.max_price is not None and quote.charged > self.max_price:
            raise WaveSpeedCostError(
                f"WaveSpeed quotes {quote.describe()} for this prediction of '{self.model}', above "
                f"max_price={self.max_price:g}; nothing was submitted or paid for. What the price follows: "
                f"{self.cost_basis(inputs)}. Raise max_price, or use shorter or cheaper inputs.",
                price=quote.charged,
                currency=quote.currency,
            )
        if self.min_balance_after is not None:
            balance = self.hook.get_balance()
            if balance - quote.charged < self.min_balance_after:
                raise WaveSpeedCostError(
                    f"The WaveSpeed balance is {balance:.4f} USD; paying the quote of {quote.describe()} for this "
                    f"prediction of '{self.model}' would leave {balance - quote.charged:.4f}, below "
                    f"min_balance_after={self.min_balance_after:g}; nothing was submitted or paid for. Top up the "
                    "account at wavespeed.ai, or lower min_balance_after.",
                    price=quote.charged,
                    currency=quote.currency,
                )
        return quote

    def cost_basis(self, inputs: Mapping[str, Any]) -> str:
        """What the price of these inputs follows, for the quote's log line and the cap's error."""
        return "inputs " + ", ".join(f"{name}={value!r}" for name, value in inputs.items())

    @staticmethod
    def _price_fields(quote: dict[str, Any] | None) -> dict[str, Any]:
        if quote is None:
            return {"price": None, "list_price": None, "currency": None}
        return {"price": quote["discounted_price"], "list_price": quote["price"], "currency": quote["currency"]}

    def _finish(
        self,
        context: Context,
        prediction: Prediction,
        record: SubmittedPredictionRecord,
        quote: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Turn a terminal prediction into the task's result: raise its failure, or keep its outputs."""
        prediction.raise_for_failure()
        try:
            prediction.raise_for_unusable_output(fail_on_nsfw=self.fail_on_nsfw)
        except PredictionOutputError:
            # Unlike a failed prediction, a completed one would be resumed by the retry, which could
            # then never succeed: forgotten, the retry submits anew, as the error says it does.
            record.forget()
            raise
        result = {**prediction.summary(), **self._price_fields(quote)}
        self.wavespeed_output = prediction.outputs[0]
        plan = plan_output(self.output_path)
        if plan is not None:
            claim_output_file(context, plan, dag_task_ids(context, self), paid=prediction.id)
            result["stored_outputs"] = store_outputs(
                self.hook, plan, prediction, self._inputs_description(context), result, context
            )
            self.stored_output = str(result["stored_outputs"][0])
        record.forget()
        self.log.info(
            "WaveSpeed prediction %s completed: %s",
            prediction.id,
            result.get("stored_outputs") or result["outputs"],
        )
        if quote is None:
            self.log.info(
                "WaveSpeed prediction %s was submitted by an earlier try, which logged its price", prediction.id
            )
        else:
            self.log.info(
                "WaveSpeed prediction %s cost %.4f %s (quoted before the submit)",
                prediction.id,
                quote["discounted_price"],
                quote["currency"],
            )
        self.result = result
        return result


def _quote_dict(quote: ModelPrice | None) -> dict[str, Any] | None:
    """The quote as plain data, for XCom and the deferral's kwargs."""
    if quote is None:
        return None
    return {
        "model": quote.model,
        "price": quote.price,
        "discounted_price": quote.discounted_price,
        "discount_rate": quote.discount_rate,
        "currency": quote.currency,
    }


def _pulled_quote(context: Context) -> dict[str, Any] | None:
    """The quote this try pushed before it submitted: Airflow keeps a task's XComs over a deferral."""
    ti = context["ti"]
    pulled = ti.xcom_pull(task_ids=ti.task_id, key=PRICE_XCOM_KEY, map_indexes=ti.map_index)
    return pulled if isinstance(pulled, dict) and {"discounted_price", "price", "currency"} <= pulled.keys() else None


def _check_media_input(field: str, value: Any) -> None:
    """Raise a ValueError naming ``field`` unless ``value`` is media the operator can use."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{field} is required: pass an http(s) URL, a local path or an object-storage URI")
    text = path_text(value)
    if text is None:
        if hasattr(value, "open") and hasattr(value, "stat"):  # an ObjectStoragePath
            check_storage_file(value, field=field)
            return
        raise ValueError(
            f"{field}={value!r} is a {type(value).__name__}; pass an http(s) URL, a local path, or an "
            "object-storage URI / ObjectStoragePath"
        )
    if is_http_url(text):
        if not urlsplit(text).netloc:
            raise ValueError(f"{field}={text!r} is not a complete URL (no host)")
        return
    local = local_path_of(text)
    if local is not None:
        check_readable_file(local, field=field)
        return
    scheme = url_scheme(text)
    supported = _object_storage_schemes()
    if scheme not in supported:
        raise ValueError(
            f"{field}={text!r} has the unsupported scheme '{scheme}://'; use http(s), file, a local path, "
            f"or an object-storage scheme Airflow knows ({', '.join(sorted(supported)[:12])}, ...)"
        )
    check_storage_file(text, field=field)


def _object_storage_schemes() -> set[str]:
    import fsspec

    return set(fsspec.available_protocols()) - {"http", "https", "file", "local"}


@contextmanager
def _resume_hint_on_failure(request_id: str) -> Iterator[None]:
    """Say, in the message of a failure that leaves a paid prediction behind, how to resume it for free.

    Not for a prediction that failed or whose output is unusable (a retry submits anew, as their
    messages say), nor one WaveSpeed does not know, nor a message that already says it.
    """
    try:
        yield
    except (PredictionFailedError, PredictionOutputError, WaveSpeedNotFoundError):
        raise
    except WaveSpeedError as error:
        hint = resume_hint(request_id)
        if isinstance(error, PredictionWaitTimeoutError) or hint in str(error):
            raise
        error.args = (f"{error} {hint}", *error.args[1:])
        raise
