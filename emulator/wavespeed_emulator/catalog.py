"""The models the emulator serves, the validation of their inputs, and the catalog it lists.

The input schemas follow WaveSpeed's model pages: the lipsync family takes ``video`` and ``audio``
URLs and an optional ``sync_mode`` (default ``cut_off``), as the parameter table of
sync/lipsync-1.9.0-beta's API page gives them; the image model takes a ``prompt`` and a few
typed options (their names and ranges are the emulator's own, so that the catalog has a model
with integer and enum inputs besides the lipsync family). Like the real API, fields a model does
not know are ignored rather than refused.

`catalog_entry` renders a model as ``GET /api/v3/models`` lists it: ``model_id``, ``base_price``,
``formula`` and ``api_schema.api_schemas[0].request_schema`` (the shape the official MCP server
reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from wavespeed_emulator.envelope import ApiError
from wavespeed_emulator.payloads import optional_field, required_field

if TYPE_CHECKING:
    from collections.abc import Mapping

SYNC_MODES = ("bounce", "loop", "cut_off", "silence", "remap")


SYNC_MODE_DESCRIPTION = (
    "Defines how to handle duration mismatches between video and audio inputs. See the Media Content Tips guide "
    "https://docs.sync.so/compatibility-and-tips/media-content-tips#sync-mode-options for a brief overview, or "
    "the SyncMode enum below for detailed explanations of each option."
)
_JSON_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean"}


class OutputKind(StrEnum):
    """What a model produces; decides the output file the emulator writes."""

    VIDEO = "video"
    IMAGE = "image"


@dataclass(frozen=True)
class InputField:
    """One input of a model: a JSON string by default."""

    name: str
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str | int | None = None
    kind: type = str
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def schema(self) -> dict[str, Any]:
        """The input as a JSON-schema property of the catalog's ``request_schema``."""
        prop: dict[str, Any] = {"type": _JSON_TYPE[self.kind]}
        if self.description:
            prop["description"] = self.description
        if self.choices:
            prop["enum"] = list(self.choices)
        if self.default is not None:
            prop["default"] = self.default
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        return prop


@dataclass(frozen=True)
class ModelSpec:
    """A model path, its inputs and what it outputs."""

    path: str
    fields: tuple[InputField, ...]
    output: OutputKind
    name: str = ""

    def validate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Return the model's inputs from a submit body, with defaults filled in.

        Raises `ApiError` 400 naming the first field that is missing, empty, of the wrong type or
        outside its allowed values.
        """
        inputs: dict[str, Any] = {}
        for field in self.fields:
            read = required_field if field.required else optional_field
            given = read(body, field.name, field.kind)
            value = field.default if given is None else given
            if value is None:
                continue
            if field.choices and value not in field.choices:
                raise ApiError(
                    400,
                    f"Invalid parameter: {field.name} {value!r} is not one of {', '.join(field.choices)}",
                )
            low, high = field.minimum, field.maximum
            if isinstance(value, int) and ((low is not None and value < low) or (high is not None and value > high)):
                raise ApiError(400, f"Invalid parameter: {field.name} {value!r} is outside {low} to {high}")
            inputs[field.name] = value
        return inputs

    def request_schema(self) -> dict[str, Any]:
        """The JSON schema of the model's inputs, as the catalog lists it."""
        return {
            "type": "object",
            "properties": {field.name: field.schema() for field in self.fields},
            "required": [field.name for field in self.fields if field.required],
            "x-order-properties": [field.name for field in self.fields],
        }


_LIPSYNC_FIELDS = (
    InputField("video", required=True, description="The video to be used for generation"),
    InputField("audio", required=True, description="The audio to be used for generation"),
    InputField("sync_mode", choices=SYNC_MODES, default="cut_off", description=SYNC_MODE_DESCRIPTION),
)
_IMAGE_FIELDS = (
    InputField("prompt", required=True, description="The text prompt for generation"),
    InputField("size", default="1024*1024", description="The width*height of the image in pixels"),
    InputField("seed", kind=int, default=-1, minimum=-1, maximum=2147483647, description="-1 for a random seed"),
    InputField("output_format", choices=("jpeg", "png", "webp"), default="png", description="The image format"),
)

MODELS: dict[str, ModelSpec] = {
    spec.path: spec
    for spec in (
        ModelSpec("sync/lipsync-1.9.0-beta", _LIPSYNC_FIELDS, OutputKind.VIDEO, "Sync Lipsync 1.9.0 Beta"),
        ModelSpec("sync/lipsync-2", _LIPSYNC_FIELDS, OutputKind.VIDEO, "Sync Lipsync 2"),
        ModelSpec("sync/lipsync-2-pro", _LIPSYNC_FIELDS, OutputKind.VIDEO, "Sync Lipsync 2 Pro"),
        ModelSpec("sync/lipsync-3", _LIPSYNC_FIELDS, OutputKind.VIDEO, "Sync Lipsync 3"),
        ModelSpec("wavespeed-ai/z-image/turbo", _IMAGE_FIELDS, OutputKind.IMAGE, "Z-Image Turbo"),
    )
}


def find_model(path: str) -> ModelSpec:
    """Return the model served at ``path``, or raise `ApiError` 404 naming it."""
    try:
        return MODELS[path]
    except KeyError:
        raise ApiError(404, f"Model not found: {path}") from None
