"""Uploads and downloads through the hook stream: memory does not grow with the file's size."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from wavespeed_emulator import WaveSpeedEmulator

pytestmark = pytest.mark.integration

FILE_MIB = 96
# The hook moves 1 MiB chunks; a buffered transfer would need the whole file (96 MiB) at once.
PEAK_BUDGET_MIB = 16


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.mp4"
    with path.open("wb") as out:
        for index in range(FILE_MIB):
            out.write(bytes([index % 256]) * (1024 * 1024))
    return path


@pytest.fixture
def hook(emulator: WaveSpeedEmulator, monkeypatch: pytest.MonkeyPatch) -> WaveSpeedHook:
    connection = {"conn_type": "wavespeed", "host": emulator.base_url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", json.dumps(connection))
    return WaveSpeedHook()


def peak_mib_while(action) -> tuple[object, float]:
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_upload_and_download_stream_with_bounded_memory(hook: WaveSpeedHook, big_file: Path, tmp_path: Path):
    hook.base_url  # noqa: B018  # resolve the connection outside the measurement

    url, upload_peak = peak_mib_while(lambda: hook.upload(big_file))
    target = tmp_path / "copy" / "big.mp4"
    location, download_peak = peak_mib_while(lambda: hook.download(str(url), target))

    assert upload_peak < PEAK_BUDGET_MIB
    assert download_peak < PEAK_BUDGET_MIB
    assert location == str(target)
    assert target.stat().st_size == big_file.stat().st_size
    assert target.read_bytes()[:: 1024 * 1024] == big_file.read_bytes()[:: 1024 * 1024]
