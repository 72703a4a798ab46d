"""Pytest fixtures that run the WaveSpeed emulator in this process, on 127.0.0.1 only.

``emulator`` is a fresh emulator per test with fast lifecycles (predictions finish in 0.3 s);
``emulator_factory(**overrides)`` builds one with other `EmulatorConfig` values.
`fast_emulator_config` gives the same fast settings for emulators run in a child process.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wavespeed_emulator import EmulatorConfig, WaveSpeedEmulator

EmulatorFactory = Callable[..., WaveSpeedEmulator]


def fast_emulator_config(**overrides: Any) -> EmulatorConfig:
    """A loopback emulator config with a random test key and lifecycles short enough for unit tests."""
    settings: dict[str, Any] = {
        "api_key": f"test-key-{secrets.token_hex(8)}",
        "host": "127.0.0.1",
        "queue_seconds": 0.05,
        "prediction_seconds": (0.3, 0.3),
        "sync_wait_seconds": 5.0,
        "webhook_retry_seconds": 0.05,
        **overrides,
    }
    return EmulatorConfig(**settings)


@pytest.fixture
def emulator_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorFactory]:
    started: list[WaveSpeedEmulator] = []

    def build(**overrides: Any) -> WaveSpeedEmulator:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("emulator"))
        emulator = WaveSpeedEmulator(fast_emulator_config(**overrides)).start()
        started.append(emulator)
        return emulator

    yield build
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> WaveSpeedEmulator:
    return emulator_factory()
