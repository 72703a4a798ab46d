"""Checking a prediction's inputs against the model's ``request_schema`` before anything is paid.

WaveSpeed's catalog (``GET /api/v3/models``) gives every model a JSON schema of its inputs
(``properties`` with ``type``, ``enum``, ``minimum``/``maximum``, ``default``; ``required``). A
submit that breaks it costs a round trip at best, and at worst a paid prediction that fails, so
the operator checks the inputs first: a missing required input, a value outside an ``enum`` or its
range, or a wrong type fails naming the input, the value and what is allowed.

Inputs the schema does not list are passed on with a warning: WaveSpeed ignores inputs a model
does not know (inferred from its documentation of optional parameters), and general ones such as
``enable_sync_mode`` are not in every model's schema.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_wavespeed.exceptions import WaveSpeedInputSchemaError

if TYPE_CHECKING:
    from airflow_provider_wavespeed.models import CatalogModel

log = logging.getLogger(__name__)

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (Mapping,),
}


def check_inputs(entry: CatalogModel, inputs: Mapping[str, Any], *, media_inputs: Collection[str] = ()) -> None:
    """Raise :class:`WaveSpeedInputSchemaError` for the first input that breaks ``entry``'s schema.

    :param media_inputs: inputs that are media not uploaded yet (a path or storage URI becomes a
        URL string later): only their presence is checked here.
    """
    properties = entry.properties
    for name in entry.required:
        if name not in media_inputs and _is_missing(inputs.get(name)):
            _fail(entry, name, f"is required and missing{_allowed_text(properties.get(name))}")
    for name, value in inputs.items():
        spec = properties.get(name)
        if not isinstance(spec, dict):
            if name not in properties:
                log.warning(
                    "Input %r is not in the catalog schema of WaveSpeed model '%s' (it lists %s); WaveSpeed "
                    "ignores inputs a model does not know.",
                    name,
                    entry.model,
                    ", ".join(properties) or "none",
                )
            continue
        if name in media_inputs or (value is None and name not in entry.required):
            continue
        _check_value(entry, name, value, spec)


def _check_value(entry: CatalogModel, name: str, value: Any, spec: dict[str, Any]) -> None:
    expected = spec.get("type")
    kinds = _JSON_TYPES.get(expected) if isinstance(expected, str) else None
    # bool is an int in Python, never in JSON; an integral float is a JSON integer (e.g. 2.0).
    is_integral_float = expected == "integer" and isinstance(value, float) and value.is_integer()
    if kinds is not None and (
        (isinstance(value, bool) and expected != "boolean") or not (isinstance(value, kinds) or is_integral_float)
    ):
        _fail(entry, name, f"= {value!r} is a {_json_type(value)}, but the model takes a {expected}")
    allowed = spec.get("enum")
    if isinstance(allowed, list) and allowed and value not in allowed:
        _fail(entry, name, f"= {value!r} is not one of {', '.join(map(str, allowed))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minimum, maximum = spec.get("minimum"), spec.get("maximum")
        if isinstance(minimum, (int, float)) and value < minimum:
            _fail(entry, name, f"= {value!r} is below the minimum {minimum}{_range_text(spec)}")
        if isinstance(maximum, (int, float)) and value > maximum:
            _fail(entry, name, f"= {value!r} is above the maximum {maximum}{_range_text(spec)}")


def _fail(entry: CatalogModel, name: str, problem: str) -> None:
    raise WaveSpeedInputSchemaError(
        f"Input '{name}' of WaveSpeed model '{entry.model}' {problem} (the model's request_schema in "
        "WaveSpeed's catalog); nothing was uploaded or paid for. Fix the input.",
        model=entry.model,
        field=name,
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _allowed_text(spec: Any) -> str:
    if not isinstance(spec, dict):
        return ""
    parts = [f"a {spec['type']}"] if isinstance(spec.get("type"), str) else []
    if isinstance(spec.get("enum"), list):
        parts.append(f"one of {', '.join(map(str, spec['enum']))}")
    return f": give {', '.join(parts)}" if parts else ""


def _range_text(spec: dict[str, Any]) -> str:
    low, high = spec.get("minimum"), spec.get("maximum")
    return f" (allowed: {low} to {high})" if low is not None and high is not None else ""


def _json_type(value: Any) -> str:
    for name, kinds in _JSON_TYPES.items():
        if isinstance(value, kinds) and not (isinstance(value, bool) and name != "boolean"):
            return name
    return "null" if value is None else type(value).__name__
