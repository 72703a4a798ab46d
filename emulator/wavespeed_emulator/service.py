"""The emulated WaveSpeed backend: the account's predictions, files, balance and webhooks.

It knows nothing of HTTP; `app` parses requests and calls it. All of it runs on the emulator's
event loop, which is what lets it use plain dicts and counters without locks. With a configured
data dir the account is saved there (see `persistence`) and a new process carries on from it:
`resume` finishes what a stopped one left unfinished.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wavespeed_emulator.catalog import MODELS
from wavespeed_emulator.envelope import ApiError
from wavespeed_emulator.faults import FaultConfig, FaultInjector
from wavespeed_emulator.media import MediaStore
from wavespeed_emulator.outcomes import TASK_ERRORS, TASK_EXECUTION_FAILED, plan_outcome
from wavespeed_emulator.persistence import AccountState
from wavespeed_emulator.predictions import (
    Prediction,
    PredictionStatus,
    PredictionStore,
    wait_until_finished,
)
from wavespeed_emulator.pricing import Quote, quote
from wavespeed_emulator.render import UnrenderableInputError
from wavespeed_emulator.stats import EmulatorStats
from wavespeed_emulator.webhooks import WebhookSender, new_webhook_secret

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable
    from pathlib import Path

    from wavespeed_emulator.catalog import ModelSpec
    from wavespeed_emulator.config import EmulatorConfig

logger = logging.getLogger(__name__)

SYNC_TIMEOUT_CODE = 5004


class WaveSpeedService:
    """One emulated WaveSpeed account and the work its predictions do in the background."""

    def __init__(self, config: EmulatorConfig, data_dir: Path) -> None:
        self.config = config
        self.stats = EmulatorStats()
        self.predictions = PredictionStore()
        self.media = MediaStore(data_dir)
        self.faults = FaultInjector(self.stats, config.seed)
        self.faults.configure(config.faults)
        self._state = None if config.data_dir is None else AccountState(data_dir / "state")
        secret = new_webhook_secret()
        self.webhooks = WebhookSender(
            secret=secret if self._state is None else self._state.webhook_secret(secret),
            attempts=config.webhook_attempts,
            retry_seconds=config.webhook_retry_seconds,
            on_delivery=self.stats.record_webhook,
        )
        self.balance = config.balance
        self.charges: dict[str, float] = {}
        """What each submit was charged, by prediction id: the account's ledger."""
        self._rng = random.Random(config.seed)
        self._background: set[asyncio.Task[None]] = set()
        if self._state is not None:
            self._load(self._state)

    def _load(self, state: AccountState) -> None:
        """Take up the account an earlier run saved: its predictions, and its ledger charged off the balance."""
        media_root = self.media.media_root.resolve()
        for record in state.prediction_records():
            model = MODELS.get(record["model"])
            if model is None:
                logger.warning("Ignoring saved prediction %s of unknown model %r", record["id"], record["model"])
                continue
            self.predictions.restore(Prediction.from_record(record, model, media_root))
        for prediction_id, amount in state.charges().items():
            self.charges[prediction_id] = amount
            self.balance = round(self.balance - amount, 6)

    def resume(self) -> None:
        """Finish in the background what an earlier run left unfinished: outputs to write, webhooks to send."""
        for prediction in self.predictions:
            if prediction.needs_output:
                prediction.production = self._spawn(self._produce_outputs(prediction))
            if prediction.needs_webhook:
                self._spawn(self._notify(prediction))

    def is_authorized(self, authorization: str | None) -> bool:
        """True when the Authorization header carries this account's key as a Bearer token."""
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.config.api_key.encode())

    def local_inputs(self, inputs: dict[str, Any], base_url: str) -> dict[str, Path]:
        """The inputs that name the emulator's own files, and their paths."""
        return {
            field: path
            for field, value in inputs.items()
            if isinstance(value, str) and (path := self.media.local_file(value, base_url)) is not None
        }

    async def quote(self, model: ModelSpec, inputs: dict[str, Any], base_url: str) -> Quote:
        """The price of a prediction with these validated inputs (see `pricing`)."""
        return await quote(self.config, model, inputs, self.local_inputs(inputs, base_url), self.media.renderer)

    def submit(
        self,
        model: ModelSpec,
        inputs: dict[str, Any],
        *,
        price: Quote,
        base_url: str,
        webhook_url: str | None,
        base64_output: bool,
    ) -> Prediction:
        """Charge ``price`` and create a prediction from validated inputs, starting what it needs in the background.

        Raises `ApiError` (``insufficient_balance_status``) when the balance cannot cover the price;
        the balance is checked and charged without an await between, so concurrent submits cannot
        both spend the same money.
        """
        refusal = self.config.insufficient_balance_status
        if refusal and price.discounted_price > self.balance:
            raise ApiError(
                refusal,
                f"{self.config.insufficient_balance_message} (this prediction costs "
                f"{price.discounted_price:.4f} USD, the balance is {self.balance:.4f} USD)",
            )
        local_inputs = self.local_inputs(inputs, base_url)
        outcome = plan_outcome(
            inputs,
            seconds_range=self.config.prediction_seconds,
            rng=self._rng,
            unreadable_fields={field for field, path in local_inputs.items() if not path.is_file()},
        )
        prediction = self.predictions.create(
            model=model,
            inputs=inputs,
            outcome=outcome,
            queue_seconds=self.config.queue_seconds,
            base64_output=base64_output,
        )
        prediction.local_inputs = local_inputs
        prediction.webhook_url, prediction.webhook_base_url = webhook_url, base_url
        self._save(prediction)
        self.stats.record_submit(model.path, inputs)
        self.balance = round(self.balance - price.discounted_price, 6)
        self.charges[prediction.id] = price.discounted_price
        if self._state is not None:
            self._state.save_charge(prediction.id, price.discounted_price, prediction.created_at)
        if not outcome.failed:
            prediction.production = self._spawn(self._produce_outputs(prediction))
        if webhook_url is not None:
            self._spawn(self._notify(prediction))
        return prediction

    async def describe(self, prediction: Prediction, base_url: str, now: float | None = None) -> dict[str, Any]:
        """The prediction as the API shows it at ``now`` (default: the current time)."""
        now = time.time() if now is None else now
        outputs: list[str] = []
        if prediction.status(now) is PredictionStatus.COMPLETED:
            if prediction.base64_output:
                outputs = [await self.media.read_base64(prediction.id, name) for name in prediction.output_names]
            else:
                outputs = [
                    base_url + self.media.output_url_path(prediction.id, name) for name in prediction.output_names
                ]
        return prediction.describe(now=now, result_url=result_url(base_url, prediction.id), outputs=outputs)

    async def describe_in_sync_mode(self, prediction: Prediction, base_url: str) -> dict[str, Any]:
        """Wait for the end like a sync-mode submit; past the sync wait, answer "still processing" (5004)."""
        wait = self.config.sync_wait_seconds
        try:
            await asyncio.wait_for(wait_until_finished(prediction), wait)
        except TimeoutError:
            return {
                **await self.describe(prediction, base_url),
                "status": PredictionStatus.PROCESSING.value,
                "code": SYNC_TIMEOUT_CODE,
                "error": f"Sync mode timed out after {wait:g} seconds. "
                "The prediction is still processing asynchronously.",
            }
        return await self.describe(prediction, base_url)

    def mark_deleted(self, prediction: Prediction) -> None:
        """Delete a prediction as the single-prediction route does: it stays readable, as ``deleted``."""
        prediction.deleted = True
        self._save(prediction)

    def delete_predictions(self, prediction_ids: Iterable[str]) -> int:
        """Delete predictions and their outputs for good; return how many existed."""
        removed = self.predictions.remove(prediction_ids)
        for prediction in removed:
            self.media.remove_outputs(prediction.id)
            if self._state is not None:
                self._state.forget_prediction(prediction.id)
        return len(removed)

    def reset(self) -> None:
        """Start over: no predictions, outputs, stats or faults; the initial balance.

        Uploads and the webhook secret stay, as a client may still hold their URLs and key.
        """
        self._cancel_background()
        self.predictions.clear()
        self.media.clear_outputs()
        self.stats.clear()
        self.faults.configure(FaultConfig())
        self.balance = self.config.balance
        self.charges.clear()
        if self._state is not None:
            self._state.clear()

    def stats_snapshot(self) -> dict[str, Any]:
        """The counters plus each prediction's timeline, for ``GET /_emulator/stats``."""
        now = time.time()
        return {
            **self.stats.snapshot(),
            "balance": self.balance,
            "charges": dict(self.charges),
            "predictions": {
                prediction.id: {
                    "model": prediction.model.path,
                    "status": prediction.status(now).value,
                    "created_at": prediction.created_at,
                    "completed_at": prediction.completed_at(now),
                    "first_final_read_at": prediction.first_final_read_at,
                }
                for prediction in self.predictions
            },
        }

    async def close(self) -> None:
        """Stop background work; output writes already in a thread finish first, so none outlives the data dir."""
        await asyncio.gather(*self._cancel_background(), return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()
        await self.webhooks.close()

    def _cancel_background(self) -> list[asyncio.Task[None]]:
        """Cancel output writes and webhook waits; returns the cancelled tasks to await if wanted."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        return tasks

    async def _produce_outputs(self, prediction: Prediction) -> None:
        """Write the output; the prediction completes only once it exists, however long that takes.

        An input that is not usable media fails the prediction with 1403 and a message naming the
        input, its URL and what is wrong, as the model would fail on it.
        """
        try:
            name = await self.media.write_output(
                prediction.id, prediction.model.output, prediction.inputs, prediction.local_inputs
            )
        except UnrenderableInputError as error:
            url = prediction.inputs.get(error.field, "") if error.field else ""
            message = f"{TASK_ERRORS[TASK_EXECUTION_FAILED]}: {error}" + (f": {url}" if url else "")
            logger.info("Prediction %s fails: %s", prediction.id, message)
            self._fail(prediction, message)
            return
        except OSError:
            logger.exception("Could not write the output of prediction %s; it will fail", prediction.id)
            self._fail(prediction, TASK_ERRORS[TASK_EXECUTION_FAILED])
            return
        prediction.output_names = (name,)
        prediction.outputs_ready_at = time.time()
        self._save(prediction)

    def _fail(self, prediction: Prediction, message: str) -> None:
        prediction.outcome = replace(prediction.outcome, error_code=TASK_EXECUTION_FAILED, error=message)
        self._save(prediction)

    def _save(self, prediction: Prediction) -> None:
        """Write the prediction's record, unless it is in memory only or was deleted for good meanwhile."""
        if self._state is not None and prediction in self.predictions:
            self._state.save_prediction(prediction.to_record(self.media.media_root.resolve()))

    async def _notify(self, prediction: Prediction) -> None:
        """Post the webhook once the prediction ends; a prediction deleted first sends none."""
        assert prediction.webhook_url is not None
        await wait_until_finished(prediction)
        data = await self.describe(prediction, prediction.webhook_base_url)
        status = PredictionStatus(data["status"])
        if status not in (PredictionStatus.COMPLETED, PredictionStatus.FAILED):
            return
        payload = {
            "id": data["id"],
            "model": data["model"],
            "input": prediction.inputs,
            **({"outputs": data["outputs"]} if status is PredictionStatus.COMPLETED else {}),
            "urls": data["urls"],
            "has_nsfw_contents": data["has_nsfw_contents"],
            "status": data["status"],
            "created_at": data["created_at"],
            "error": data["error"],
        }
        await self.webhooks.deliver(prediction.id, prediction.webhook_url, payload)
        prediction.webhook_sent = True
        self._save(prediction)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the background, holding a reference so it is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def result_url(base_url: str, prediction_id: str) -> str:
    return f"{base_url}/api/v3/predictions/{prediction_id}/result"
