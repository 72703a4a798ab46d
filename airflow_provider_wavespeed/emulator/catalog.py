"""The models the emulator serves and the validation of their inputs.

The input schemas follow WaveSpeed's model pages: the lipsync family takes ``video`` and ``audio``
URLs and an optional ``sync_mode`` (default ``cut_off``); the image model takes a ``prompt``.
Like the real API, fields a model does not know are ignored rather than refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from airflow_provider_wavespeed.emulator.envelope import ApiError
from airflow_provider_wavespeed.emulator.payloads import optional_field, required_field

if TYPE_CHECKING:
    from collections.abc import Mapping

SYNC_MODES = ("bounce", "loop", "cut_off", "silence", "remap")


class OutputKind(StrEnum):
    """What a model produces; decides the output file the emulator writes."""

    VIDEO = "video"
    IMAGE = "image"


@dataclass(frozen=True)
class InputField:
    """One string input of a model."""

    name: str
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model path, its inputs and what it outputs."""

    path: str
    fields: tuple[InputField, ...]
    output: OutputKind

    def validate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Return the model's inputs from a submit body, with defaults filled in.

        Raises `ApiError` 400 naming the first field that is missing, empty, of the wrong type or
        outside its allowed values.
        """
        inputs: dict[str, Any] = {}
        for field in self.fields:
            read = required_field if field.required else optional_field
            given = read(body, field.name, str)
            value = field.default if given is None else given
            if value is None:
                continue
            if field.choices and value not in field.choices:
                raise ApiError(
                    400,
                    f"Invalid parameter: {field.name} {value!r} is not one of {', '.join(field.choices)}",
                )
            inputs[field.name] = value
        return inputs


_LIPSYNC_FIELDS = (
    InputField("video", required=True),
    InputField("audio", required=True),
    InputField("sync_mode", choices=SYNC_MODES, default="cut_off"),
)

MODELS: dict[str, ModelSpec] = {
    spec.path: spec
    for spec in (
        ModelSpec("sync/lipsync-1.9.0-beta", _LIPSYNC_FIELDS, OutputKind.VIDEO),
        ModelSpec("sync/lipsync-2", _LIPSYNC_FIELDS, OutputKind.VIDEO),
        ModelSpec("sync/lipsync-2-pro", _LIPSYNC_FIELDS, OutputKind.VIDEO),
        ModelSpec("sync/lipsync-3", _LIPSYNC_FIELDS, OutputKind.VIDEO),
        ModelSpec("wavespeed-ai/z-image/turbo", (InputField("prompt", required=True),), OutputKind.IMAGE),
    )
}


def find_model(path: str) -> ModelSpec:
    """Return the model served at ``path``, or raise `ApiError` 404 naming it."""
    try:
        return MODELS[path]
    except KeyError:
        raise ApiError(404, f"Model not found: {path}") from None
