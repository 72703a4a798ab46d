"""Reading JSON request bodies, with the API's 400 messages for missing and mistyped fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from wavespeed_emulator.envelope import ApiError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

T = TypeVar("T")

_JSON_TYPE_NAMES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type_name(value_type: type) -> str:
    """The JSON schema name of a decoded JSON value's Python type."""
    return _JSON_TYPE_NAMES.get(value_type, value_type.__name__)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; an absent body counts as ``{}``."""
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"Request body must be a JSON object, got {json_type_name(type(body))}")
    return body


def optional_field(body: Mapping[str, Any], name: str, expected: type[T]) -> T | None:
    """``body[name]`` if present and of exactly the ``expected`` JSON type; None if absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not expected:
        raise ApiError(
            400,
            f"Invalid parameter: {name} must be of type {json_type_name(expected)}, got {json_type_name(type(value))}",
        )
    return value


def required_field(body: Mapping[str, Any], name: str, expected: type[T]) -> T:
    """Like `optional_field`, but absence, null and a blank string are errors."""
    value = optional_field(body, name, expected)
    if value is None:
        raise ApiError(400, f"Missing required parameter: {name}")
    if isinstance(value, str) and not value.strip():
        raise ApiError(400, f"Invalid parameter: {name} must not be empty")
    return value
