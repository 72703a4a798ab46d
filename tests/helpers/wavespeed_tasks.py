"""Operators and sensors with their hook replaced, and the predictions and quotes it answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

from airflow_provider_wavespeed.models import CatalogModel, ModelPrice, Prediction
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from tests.helpers.api_answers import prediction

QUOTE = ModelPrice(model="sync/lipsync-1.9.0-beta", price=0.2, discounted_price=0.15, discount_rate=25.0)
PRICE_FIELDS = {"price": 0.15, "list_price": 0.2, "currency": "USD"}
LIPSYNC_CATALOG_ENTRY = CatalogModel(
    model="sync/lipsync-1.9.0-beta",
    request_schema={
        "type": "object",
        "properties": {
            "video": {"type": "string"},
            "audio": {"type": "string"},
            "sync_mode": {"type": "string", "enum": ["bounce", "loop", "cut_off", "silence", "remap"]},
        },
        "required": ["video", "audio"],
    },
)
VIDEO = "https://media.test/v.mp4"
AUDIO = "https://media.test/a.wav"
MP4_HEADER = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"
"""The first bytes of an MP4 file: enough for the container check."""


def parsed(status: str, **overrides: object) -> Prediction:
    return Prediction.from_api(prediction(status, **overrides)["data"])


def replaced_hook(owner: type) -> Iterator[mock.MagicMock]:
    """Replace ``owner.hook`` (a cached property) by a mock for the duration of a test."""
    with mock.patch.object(owner, "hook", new_callable=mock.PropertyMock) as prop:
        prop.return_value = mock.MagicMock(base_url="https://api.wavespeed.test")
        prop.return_value.get_catalog_model.return_value = LIPSYNC_CATALOG_ENTRY
        prop.return_value.get_price.return_value = QUOTE
        yield prop.return_value


def submitting(answer: Prediction | Exception) -> Any:
    """A ``hook.submit`` side effect that answers ``answer``, or raises it."""

    def submit(model: str, inputs: Any, *, webhook: str | None = None) -> Prediction:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return submit


def lipsync(**kwargs: Any) -> LipsyncOperator:
    return LipsyncOperator(**{"task_id": "lipsync", "video": VIDEO, "audio": AUDIO, **kwargs})
