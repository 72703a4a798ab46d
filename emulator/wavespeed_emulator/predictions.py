"""Predictions and their lifecycle: created, then processing, then completed or failed.

A prediction's status is computed from its timestamps whenever it is read, never advanced by a
timer, so thousands of clients can poll without the emulator doing work per prediction. Only the
two features that must act at the moment a prediction ends (sync-mode submits and webhooks) wait
for it, through `wait_until_finished`.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from wavespeed_emulator.envelope import ApiError
from wavespeed_emulator.outcomes import Outcome

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from wavespeed_emulator.catalog import ModelSpec


class PredictionStatus(StrEnum):
    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(eq=False)
class Prediction:
    """One submitted task. Times are wall-clock Unix seconds, as benchmarks compare them across processes."""

    id: str
    model: ModelSpec
    inputs: dict[str, Any]
    outcome: Outcome
    created_at: float
    processing_at: float
    base64_output: bool = False
    output_names: tuple[str, ...] = ()
    outputs_ready_at: float | None = None
    deleted: bool = False
    production: asyncio.Task[None] | None = field(default=None, repr=False)
    first_final_read_at: float | None = None
    """When a client first read it in a final status: how soon a client noticed its end."""
    local_inputs: dict[str, Path] = field(default_factory=dict)
    """The inputs that name the emulator's own files, and their paths: what the output is made from."""
    webhook_url: str | None = None
    webhook_base_url: str = ""
    """The submit's base URL, under which the webhook names the outputs."""
    webhook_sent: bool = False

    @property
    def needs_output(self) -> bool:
        """True while the output of a prediction that will succeed is still to be written."""
        return not self.deleted and not self.outcome.failed and self.outputs_ready_at is None

    @property
    def needs_webhook(self) -> bool:
        return self.webhook_url is not None and not self.webhook_sent and not self.deleted

    def to_record(self, media_root: Path) -> dict[str, Any]:
        """The prediction as plain JSON data, input paths relative to ``media_root`` (see `from_record`)."""
        return {
            "id": self.id,
            "model": self.model.path,
            "inputs": self.inputs,
            "outcome": asdict(self.outcome),
            "created_at": self.created_at,
            "processing_at": self.processing_at,
            "base64_output": self.base64_output,
            "output_names": list(self.output_names),
            "outputs_ready_at": self.outputs_ready_at,
            "deleted": self.deleted,
            "local_inputs": {name: str(path.relative_to(media_root)) for name, path in self.local_inputs.items()},
            "webhook_url": self.webhook_url,
            "webhook_base_url": self.webhook_base_url,
            "webhook_sent": self.webhook_sent,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], model: ModelSpec, media_root: Path) -> Prediction:
        """The prediction `to_record` saved; ``model`` is the spec of its ``model`` path."""
        return cls(
            id=record["id"],
            model=model,
            inputs=record["inputs"],
            outcome=Outcome(**record["outcome"]),
            created_at=record["created_at"],
            processing_at=record["processing_at"],
            base64_output=record["base64_output"],
            output_names=tuple(record["output_names"]),
            outputs_ready_at=record["outputs_ready_at"],
            deleted=record["deleted"],
            local_inputs={name: media_root / path for name, path in record["local_inputs"].items()},
            webhook_url=record["webhook_url"],
            webhook_base_url=record["webhook_base_url"],
            webhook_sent=record["webhook_sent"],
        )

    @property
    def finished_at(self) -> float:
        """When processing ends; a successful prediction also needs its output files by then."""
        return self.processing_at + self.outcome.seconds

    def status(self, now: float) -> PredictionStatus:
        if self.deleted:
            return PredictionStatus.DELETED
        if now <= self.processing_at:
            return PredictionStatus.CREATED
        if now < self.finished_at:
            return PredictionStatus.PROCESSING
        if self.outcome.failed:
            return PredictionStatus.FAILED
        if self.outputs_ready_at is None:
            return PredictionStatus.PROCESSING
        return PredictionStatus.COMPLETED

    def completed_at(self, now: float) -> float | None:
        """When the prediction became completed, or None while it is not completed."""
        if self.status(now) is not PredictionStatus.COMPLETED or self.outputs_ready_at is None:
            return None
        return max(self.finished_at, self.outputs_ready_at)

    def inference_ms(self, now: float) -> int:
        """The inference time the API reports: known only once the prediction ended."""
        ended = self.status(now) in (PredictionStatus.COMPLETED, PredictionStatus.FAILED)
        return round(self.outcome.seconds * 1000) if ended else 0

    def describe(self, *, now: float, result_url: str, outputs: list[str]) -> dict[str, Any]:
        """The prediction object of the API's ``data``; ``outputs`` are already URLs or base64."""
        status = self.status(now)
        completed = status is PredictionStatus.COMPLETED
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.model.path,
            "outputs": outputs if completed else [],
            "urls": {"get": result_url},
            "has_nsfw_contents": [self.outcome.nsfw] * len(outputs) if completed else [],
            "status": status.value,
            "created_at": iso_timestamp(self.created_at),
            "error": self.outcome.error if status is PredictionStatus.FAILED else "",
            "timings": {"inference": self.inference_ms(now)},
        }
        if status is PredictionStatus.FAILED:
            data["code"] = self.outcome.error_code
        return data


def unix_milliseconds(unix_seconds: float) -> int:
    """The whole milliseconds the API shows of a time; filters compare at this precision."""
    return math.floor(unix_seconds * 1000)


def iso_timestamp(unix_seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, the API's ``created_at`` format."""
    seconds, milliseconds = divmod(unix_milliseconds(unix_seconds), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds:03d}Z"


async def wait_until_finished(prediction: Prediction) -> None:
    """Return once the prediction's status can no longer change except by deletion.

    Waiting on the output task with `asyncio.wait` rather than awaiting it means a cancelled
    waiter (a sync-mode wait that timed out) never cancels the output being written.
    """
    delay = prediction.finished_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    if prediction.production is not None:
        await asyncio.wait({prediction.production})


class PredictionStore:
    """All predictions of the emulated account, by id."""

    def __init__(self) -> None:
        self._predictions: dict[str, Prediction] = {}

    def create(
        self,
        *,
        model: ModelSpec,
        inputs: dict[str, Any],
        outcome: Outcome,
        queue_seconds: float,
        base64_output: bool,
    ) -> Prediction:
        now = time.time()
        prediction = Prediction(
            id=uuid.uuid4().hex,
            model=model,
            inputs=inputs,
            outcome=outcome,
            created_at=now,
            processing_at=now + queue_seconds,
            base64_output=base64_output,
        )
        self._predictions[prediction.id] = prediction
        return prediction

    def restore(self, prediction: Prediction) -> None:
        """Hold a prediction saved by an earlier run of the emulator."""
        self._predictions[prediction.id] = prediction

    def __contains__(self, prediction: Prediction) -> bool:
        return self._predictions.get(prediction.id) is prediction

    def get(self, prediction_id: str) -> Prediction:
        """Return the prediction, or raise `ApiError` 404 naming the id."""
        try:
            return self._predictions[prediction_id]
        except KeyError:
            raise ApiError(404, f"Prediction not found: {prediction_id}") from None

    def remove(self, prediction_ids: Iterable[str]) -> list[Prediction]:
        """Forget the predictions for good; unknown ids are ignored, as the API documents."""
        return [
            prediction
            for prediction_id in dict.fromkeys(prediction_ids)
            if (prediction := self._predictions.pop(prediction_id, None)) is not None
        ]

    def query(
        self,
        *,
        now: float,
        model: str | None = None,
        status: PredictionStatus | None = None,
        created_after_ms: int | None = None,
        created_before_ms: int | None = None,
    ) -> list[Prediction]:
        """The predictions matching every given filter (creation bounds inclusive), newest first."""
        matches = [
            prediction
            for prediction in self._predictions.values()
            if (model is None or prediction.model.path == model)
            and (status is None or prediction.status(now) is status)
            and (created_after_ms is None or unix_milliseconds(prediction.created_at) >= created_after_ms)
            and (created_before_ms is None or unix_milliseconds(prediction.created_at) <= created_before_ms)
        ]
        return sorted(matches, key=lambda prediction: prediction.created_at, reverse=True)

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self._predictions.values())

    def clear(self) -> None:
        self._predictions.clear()
