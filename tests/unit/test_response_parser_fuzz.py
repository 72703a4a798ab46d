"""Property-based fuzzing of the response parser.

Whatever bytes come back (a gateway's page, a cut-off body, an envelope whose fields have any JSON
type), parsing yields a Prediction (or the other parsers' values) or one of the provider's own
typed errors: never a KeyError, TypeError, RecursionError or OverflowError that would fail a task
with a traceback instead of a message. The runs are derandomized, so CI sees the same examples.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pendulum
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_wavespeed.exceptions import WaveSpeedError
from airflow_provider_wavespeed.models import (
    Prediction,
    UploadTicket,
    balance_from_api,
    download_url_from_api,
    parse_envelope,
    predictions_from_api,
)

URL = "https://api.wavespeed.test/api/v3/predictions/abc/result"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # too large for a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
numberish_text = st.from_regex(r"\A\s*[-+]{0,2}[0-9\u00b2\u0660-\u0669\uff10-\uff19]{1,6}(\.[0-9]+)?\s*\Z")
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    st.from_regex(
        r"\A[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}(T[0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?\Z"
    ),
    st.sampled_from(["", "yesterday", "P1D", "2023-02-30T00:00:00Z", "9999-12-31T23:59:59-23:59", "0000-00-00"]),
    st.text(max_size=30),
)
statuses = st.sampled_from(
    ["created", "processing", "completed", "failed", "cancelled", "timeout", "deleted", "pending", ""]
)
codes = st.one_of(st.sampled_from([200, 400, 401, 403, 404, 429, 500, 502, 1402, 5004]), numberish_text, json_values)
prediction_data = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=12), json_values),
        "model": json_values,
        "status": st.one_of(statuses, json_values),
        "outputs": st.one_of(st.lists(st.text(max_size=20), max_size=3), json_values),
        "has_nsfw_contents": st.one_of(st.lists(json_scalars, max_size=3), json_values),
        "urls": st.one_of(st.fixed_dictionaries({}, optional={"get": json_values}), json_values),
        "created_at": st.one_of(timestamps, json_values),
        "error": json_values,
        "code": codes,
        "timings": st.one_of(
            st.fixed_dictionaries({}, optional={"inference": st.one_of(codes, json_values)}), json_values
        ),
    },
)
other_data = st.fixed_dictionaries(
    {},
    optional={
        "items": st.one_of(st.lists(prediction_data, max_size=3), json_values),
        "balance": st.one_of(numberish_text, json_values),
        "download_url": json_values,
        "upload": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "method": st.one_of(st.just("PUT"), json_values),
                    "url": json_values,
                    "headers": json_values,
                },
            ),
            json_values,
        ),
    },
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "code": codes,
        "message": json_values,
        "error": json_values,
        "data": st.one_of(prediction_data, other_data, json_values),
    },
)
http_statuses = st.one_of(
    st.sampled_from([200, 201, 204, 400, 401, 403, 404, 429, 500, 502, 503]), st.integers(100, 599)
)
retry_afters = st.one_of(st.none(), st.floats(min_value=0, allow_infinity=True))


def _parse_everything(http_status: int, body: bytes, retry_after: float | None) -> None:
    """Run ``body`` through every parser; anything but a value or a WaveSpeedError fails the test."""
    data = _value_or_error(lambda: parse_envelope(http_status=http_status, body=body, url=URL, retry_after=retry_after))
    if data is _FAILED:
        return
    assert http_status < 400
    _check_prediction(lambda: Prediction.from_api(data, url=URL, http_status=http_status))
    listed = _value_or_error(lambda: predictions_from_api(data, url=URL))
    for item in [] if listed is _FAILED else listed:
        _check_parsed_prediction(item)
    ticket = _value_or_error(lambda: UploadTicket.from_api(data, url=URL))
    assert ticket is _FAILED or (isinstance(ticket, UploadTicket) and ticket.put_url and ticket.download_url)
    download_url = _value_or_error(lambda: download_url_from_api(data, url=URL))
    assert download_url is _FAILED or (isinstance(download_url, str) and download_url)
    balance = _value_or_error(lambda: balance_from_api(data, url=URL))
    assert balance is _FAILED or isinstance(balance, float)


_FAILED = object()


def _value_or_error(parse: Callable[[], Any]) -> Any:
    """What ``parse`` returns, or _FAILED if it raised one of the provider's errors (with a message)."""
    try:
        return parse()
    except WaveSpeedError as error:
        message = str(error)
    assert message
    return _FAILED


def _check_prediction(parse: Callable[[], Any]) -> None:
    """A prediction, if parsed, is usable all the way: its checks, and its XCom summary is plain JSON."""
    prediction = _value_or_error(parse)
    if prediction is not _FAILED:
        _check_parsed_prediction(prediction)


def _check_parsed_prediction(prediction: Any) -> None:
    assert isinstance(prediction, Prediction)
    assert isinstance(prediction.id, str) and prediction.id
    assert prediction.created_at is None or isinstance(prediction.created_at, pendulum.DateTime)
    json.dumps(prediction.summary(), allow_nan=False)
    _value_or_error(prediction.raise_for_failure)
    _value_or_error(lambda: prediction.raise_for_unusable_output(fail_on_nsfw=True))


@FUZZ
@given(http_status=http_statuses, body=st.binary(max_size=300), retry_after=retry_afters)
@example(http_status=200, body=b"[" * 5_000, retry_after=None)
@example(http_status=502, body=b'{"code":' * 3_000, retry_after=None)
@example(http_status=200, body=b"\xef\xbb\xbf{}", retry_after=None)
def test_any_bytes_yield_a_value_or_a_typed_error(http_status, body, retry_after):
    _parse_everything(http_status, body, retry_after)


@FUZZ
@given(http_status=http_statuses, envelope=envelopes, retry_after=retry_afters)
@example(http_status=200, envelope={"code": "²"}, retry_after=None)
@example(
    http_status=200,
    envelope={"code": 200, "data": {"id": "x", "code": "--5", "timings": {"inference": "٣"}}},
    retry_after=None,
)
@example(http_status=200, envelope={"code": 200, "data": {"balance": 10**400}}, retry_after=None)
@example(
    http_status=200,
    envelope={"code": 200, "data": {"id": "x", "created_at": "9999-12-31T23:59:59-23:59"}},
    retry_after=None,
)
def test_any_envelope_yields_a_value_or_a_typed_error(http_status, envelope, retry_after):
    _parse_everything(http_status, json.dumps(envelope).encode(), retry_after)


@FUZZ
@given(
    http_status=http_statuses,
    envelope=envelopes,
    cut=st.integers(min_value=0),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
)
def test_cut_off_or_reencoded_envelopes_yield_a_value_or_a_typed_error(http_status, envelope, cut, encoding):
    body = json.dumps(envelope, ensure_ascii=False).encode(encoding)
    _parse_everything(http_status, body[: cut % (len(body) + 1)], None)


@FUZZ
@given(data=st.one_of(prediction_data, json_values))
def test_any_prediction_object_yields_a_prediction_or_a_typed_error(data):
    _check_prediction(lambda: Prediction.from_api(data, url=URL))
