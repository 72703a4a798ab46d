"""What the emulator charges: one price per submit, quoted the same way by ``/api/v3/model/price``.

WaveSpeed prices its lipsync family per second of video (its pages for LatentSync, InfiniteTalk
and Kling lipsync say so); the rate of sync/lipsync-1.9.0-beta is not published, so the emulator's
is its own and configurable (``price_per_second``, USD). A lipsync prediction costs that rate times
the length of the output its ``sync_mode`` produces from the two inputs (see `render`), which is
exactly the length the render gives the output file. When that length cannot be measured (an
input the emulator cannot fetch, or no ffmpeg), and for models not priced by length (the image
model), a prediction costs the flat ``price_per_submit``.

``discount_rate`` (a fraction, 0 to 1) lowers every ``discounted_price``, which is what a submit
charges; ``price`` is the list price. Prices are rounded to 1/10,000 USD, once, so a quote and the
charge of the same inputs are the same number. The catalog's ``base_price`` is the price of one
second (lipsync) or of one prediction (image), and ``formula`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wavespeed_emulator.catalog import MODELS, ModelSpec, OutputKind
from wavespeed_emulator.render import UnrenderableInputError, output_seconds

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from wavespeed_emulator.config import EmulatorConfig
    from wavespeed_emulator.render import Renderer

CURRENCY = "USD"
_PRICE_DECIMALS = 4


@dataclass(frozen=True)
class Quote:
    """The price of one prediction; ``billed_seconds`` is None when it is the flat price."""

    model: str
    price: float
    discounted_price: float
    discount_rate: float
    billed_seconds: float | None

    def describe(self) -> dict[str, Any]:
        """The ``data`` of ``POST /api/v3/model/price``."""
        return {
            "model_id": self.model,
            "price": self.price,
            "discounted_price": self.discounted_price,
            "discount_rate": self.discount_rate,
            "currency": CURRENCY,
        }


async def quote(
    config: EmulatorConfig,
    model: ModelSpec,
    inputs: Mapping[str, Any],
    local_inputs: Mapping[str, Path],
    renderer: Renderer,
) -> Quote:
    """The price of a prediction of ``model`` with validated ``inputs``.

    ``local_inputs`` maps the inputs that are the emulator's own files to their paths: the only
    media whose length it can measure.
    """
    seconds = await _billed_seconds(model, inputs, local_inputs, renderer)
    price = config.price_per_submit if seconds is None else config.price_per_second * seconds
    return Quote(
        model=model.path,
        price=round(price, _PRICE_DECIMALS),
        discounted_price=round(price * (1 - config.discount_rate), _PRICE_DECIMALS),
        discount_rate=config.discount_rate,
        billed_seconds=seconds,
    )


def catalog_entry(config: EmulatorConfig, model: ModelSpec) -> dict[str, Any]:
    """One item of ``GET /api/v3/models``."""
    by_length = model.output is OutputKind.VIDEO
    return {
        "model_id": model.path,
        "name": model.name or model.path,
        "description": "Lip-sync a video to an audio track" if by_length else "Generate an image from a prompt",
        "type": "video-to-video" if by_length else "text-to-image",
        "base_price": config.price_per_second if by_length else config.price_per_submit,
        "formula": "base_price * output_seconds" if by_length else "base_price",
        "api_schema": {"api_schemas": [{"request_schema": model.request_schema()}]},
    }


def catalog(config: EmulatorConfig) -> list[dict[str, Any]]:
    """The data of ``GET /api/v3/models``: every model the emulator serves."""
    return [catalog_entry(config, model) for model in MODELS.values()]


async def _billed_seconds(
    model: ModelSpec, inputs: Mapping[str, Any], local_inputs: Mapping[str, Path], renderer: Renderer
) -> float | None:
    if model.output is not OutputKind.VIDEO or not {"video", "audio"} <= local_inputs.keys():
        return None
    ffmpeg = await renderer.ffmpeg()
    if ffmpeg is None:
        return None
    try:
        video = await renderer.length(ffmpeg, "video", local_inputs["video"], "video")
        audio = await renderer.length(ffmpeg, "audio", local_inputs["audio"], "audio")
    except UnrenderableInputError:
        return None  # the prediction fails when it renders; it costs the flat price, like any unmeasured one
    return output_seconds(str(inputs.get("sync_mode", "cut_off")), video, audio)
