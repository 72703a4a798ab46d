"""The backoff of a wait through an outage, and the log lines of its transient failures."""

from __future__ import annotations

import logging
import random

from airflow_provider_wavespeed.exceptions import WaveSpeedUnavailableError
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
