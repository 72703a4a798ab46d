from __future__ import annotations

import pytest

from airflow_provider_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from tests.helpers.wavespeed_tasks import replaced_hook


@pytest.fixture
def hook():
    yield from replaced_hook(WaveSpeedRunModelOperator)
