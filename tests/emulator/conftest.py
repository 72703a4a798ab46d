from __future__ import annotations

import pytest

from airflow_provider_wavespeed.emulator import WaveSpeedEmulator
from tests.emulator.helpers import Api


@pytest.fixture
def api(emulator: WaveSpeedEmulator) -> Api:
    return Api(emulator)
