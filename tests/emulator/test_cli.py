from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from tests.emulator.helpers import Api
from tests.emulator_fixtures import fast_emulator_config
from wavespeed_emulator import EmulatorConfig, FaultConfig, WaveSpeedEmulator
from wavespeed_emulator.cli import config_from_args, config_to_argv

CLI = [sys.executable, "-m", "wavespeed_emulator"]

pytestmark = pytest.mark.integration


def test_cli_announces_its_url_serves_and_exits_cleanly_on_sigterm() -> None:
    env = {**os.environ, "WAVESPEED_API_KEY": "cli-key"}
    process = subprocess.Popen([*CLI, "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("WaveSpeed emulator listening on http://127.0.0.1:")
        base_url = line.split()[-1]

        response = requests.get(f"{base_url}/api/v3/balance", headers={"Authorization": "Bearer cli-key"}, timeout=10)
        assert response.json()["data"] == {"balance": 100.0}

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_cli_without_an_api_key_is_a_usage_error() -> None:
    env = {name: value for name, value in os.environ.items() if name != "WAVESPEED_API_KEY"}

    result = subprocess.run([*CLI, "--port", "0"], capture_output=True, text=True, env=env, timeout=30, check=False)

    assert result.returncode == 2
    assert "an API key is required: pass --api-key or set WAVESPEED_API_KEY" in result.stderr


def test_spawned_emulator_is_controlled_over_http_and_stops_on_terminate() -> None:
    with WaveSpeedEmulator.spawn(fast_emulator_config()) as process:
        api = Api(process)
        prediction_id = api.submit_ok()["id"]
        process.set_faults(FaultConfig(rate_503=1.0, routes=("balance",)))

        assert api.get("/api/v3/balance").status_code == 503
        assert api.wait_for(prediction_id)["status"] == "completed"
        assert process.stats()["submits"] == 1
        process.reset()
        assert process.stats()["submits"] == 0

    assert process.process.returncode == 0


def test_log_file_has_an_access_line_per_request_and_never_the_key(tmp_path: Path) -> None:
    config = fast_emulator_config()
    wrong_key = "wrong-key-0123456789"
    log_file = tmp_path / "emulator.log"
    with WaveSpeedEmulator.spawn(config, log_file=log_file) as process:
        api = Api(process)
        prediction_id = api.submit_ok()["id"]
        api.result(prediction_id)
        refused = requests.get(
            f"{process.base_url}/api/v3/balance", headers={"Authorization": f"Bearer {wrong_key}"}, timeout=10
        )

    assert refused.status_code == 401
    log = log_file.read_text()
    assert '"POST /api/v3/sync/lipsync-1.9.0-beta HTTP/1.1" 200' in log
    assert f'"GET /api/v3/predictions/{prediction_id}/result HTTP/1.1" 200' in log
    assert '"GET /api/v3/balance HTTP/1.1" 401' in log
    for secret in (config.api_key, wrong_key, "Bearer"):
        assert secret not in log


def test_api_key_is_not_on_the_spawned_command_line() -> None:
    config = fast_emulator_config()
    with WaveSpeedEmulator.spawn(config) as process:
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes() if sys.platform.startswith("linux") else b""

    assert config.api_key.encode() not in command_line


def test_command_line_round_trips_a_full_config(tmp_path: Path) -> None:
    config = EmulatorConfig(
        api_key="k",
        port=8099,
        data_dir=tmp_path,
        public_base_url="http://emulator.test",
        queue_seconds=0.5,
        prediction_seconds=(1.5, 4.0),
        sync_wait_seconds=30.0,
        balance=5.0,
        price_per_submit=0.1,
        webhook_attempts=5,
        webhook_retry_seconds=2.0,
        seed=42,
        backlog=1024,
        faults=FaultConfig(rate_429=0.1, rate_drop=0.2, routes=("submit", "result"), malformed_kinds=("html",)),
    )

    parsed = config_from_args(config_to_argv(config), environ={"WAVESPEED_API_KEY": "k"})

    assert parsed == config


def test_prediction_seconds_takes_one_value_or_a_range() -> None:
    environ = {"WAVESPEED_API_KEY": "k"}

    assert config_from_args(["--prediction-seconds", "3"], environ).prediction_seconds == (3.0, 3.0)
    assert config_from_args(["--prediction-seconds", "1:5"], environ).prediction_seconds == (1.0, 5.0)
    assert replace(config_from_args([], environ), api_key="x") == EmulatorConfig(api_key="x")


def test_invalid_settings_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(["--fault-rate-500", "0.7", "--fault-rate-503", "0.7"], {"WAVESPEED_API_KEY": "k"})

    assert exit_info.value.code == 2
    assert "fault rates add up to 1.4" in capsys.readouterr().err


def test_importing_the_emulator_loads_neither_airflow_nor_requests() -> None:
    probe = (
        "import sys, wavespeed_emulator; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'requests')))"
    )

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True)

    assert result.stdout.strip() == "[]"
