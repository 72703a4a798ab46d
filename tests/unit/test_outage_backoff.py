"""The backoff of a wait through an outage, and which failures count as transient."""

from __future__ import annotations

import logging
import random

import pytest

from airflow_provider_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedConnectionError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedUnavailableError,
)
from airflow_provider_wavespeed.hooks.wavespeed import is_retryable_error
from airflow_provider_wavespeed.models import parse_envelope
from airflow_provider_wavespeed.polling import TransientFailures, next_retry_delay


def delays(count: int, seed: int = 1, **kwargs: float) -> list[float]:
    draw = random.Random(seed)
    return [
        next_retry_delay(n, poll_interval=5, max_poll_interval=60, draw=draw, **kwargs) for n in range(1, count + 1)
    ]


def test_the_delay_doubles_from_poll_interval_with_jitter_up_to_max_poll_interval():
    for seed in range(50):
        first, second, third, fourth, *capped = delays(12, seed=seed)
        assert 2.5 <= first <= 5 and 5 <= second <= 10 and 10 <= third <= 20 and 20 <= fourth <= 40
        assert all(30 <= delay <= 60 for delay in capped)
        assert capped[-3:] == [60, 60, 60]


def test_jitter_spreads_a_fleet_of_waits_apart():
    assert len({round(delays(1, seed=seed)[0], 6) for seed in range(20)}) == 20


def test_retry_after_is_honoured_when_longer_and_capped_at_max_poll_interval():
    assert next_retry_delay(1, poll_interval=5, max_poll_interval=60, retry_after=30) == 30
    assert next_retry_delay(1, poll_interval=5, max_poll_interval=60, retry_after=3600) == 60
    assert next_retry_delay(5, poll_interval=5, max_poll_interval=60, retry_after=1) >= 30


def test_a_very_long_outage_does_not_overflow():
    assert next_retry_delay(10_000, poll_interval=5, max_poll_interval=60) == 60


def test_transient_failures_log_one_line_each_and_one_on_recovery(caplog):
    caplog.set_level(logging.INFO)
    log = logging.getLogger("test.outage")
    failures = TransientFailures("req-1", poll_interval=5, max_poll_interval=60)

    failures.recovered("processing", log)  # nothing failed: nothing to say
    for _ in range(3):
        failures.failed(WaveSpeedUnavailableError("down", http_status=503), log)
    failures.recovered("completed", log)
    failures.failed(WaveSpeedUnavailableError("down", http_status=503), log)

    messages = [record.getMessage() for record in caplog.records]
    assert [message.split(" failed (")[1].split(" in a row")[0] for message in messages if "failed (" in message] == [
        "1",
        "2",
        "3",
        "1",
    ]
    assert sum("answered again after 3 failed status checks" in message for message in messages) == 1
    assert "paid for and keeps running" in messages[0]


@pytest.mark.parametrize(
    ("status", "body", "error", "read", "submit"),
    [
        (503, b'{"code": 503, "message": "Service Unavailable"}', WaveSpeedUnavailableError, True, True),
        (503, b"<html>503</html>", WaveSpeedUnavailableError, True, True),
        (200, b'{"code": 5003, "message": "Service Unavailable"}', WaveSpeedUnavailableError, True, True),
        (429, b'{"code": 429, "message": "rate"}', WaveSpeedRateLimitError, True, True),
        (500, b'{"code": 500, "message": "internal"}', WaveSpeedServerError, True, False),
        (502, b"<html>Bad Gateway</html>", WaveSpeedServerError, True, False),
        (504, b"<html>Gateway Time-out</html>", WaveSpeedServerError, True, False),
        (200, b"<html>maintenance</html>", WaveSpeedMalformedResponseError, True, False),
        (401, b'{"code": 401, "message": "Unauthorized"}', WaveSpeedAuthError, False, False),
        (403, b'{"code": 403, "message": "Forbidden"}', WaveSpeedAuthError, False, False),
        (404, b'{"code": 404, "message": "not found"}', WaveSpeedNotFoundError, False, False),
        (400, b'{"code": 400, "message": "bad"}', WaveSpeedAPIError, False, False),
    ],
)
def test_answers_are_classified_for_waits_and_for_submits(status, body, error, read, submit):
    with pytest.raises(error) as raised:
        parse_envelope(http_status=status, body=body, url="https://api.wavespeed.test/x")
    assert type(raised.value) is error
    assert is_retryable_error(raised.value) is read
    assert is_retryable_error(raised.value, idempotent=False) is submit


@pytest.mark.parametrize(("sent", "submit"), [(False, True), (True, False)])
def test_a_connection_failure_is_transient_and_a_submit_repeats_only_if_it_never_went_out(sent, submit):
    error = WaveSpeedConnectionError("refused", request_sent=sent)
    assert is_retryable_error(error) is True
    assert is_retryable_error(error, idempotent=False) is submit
