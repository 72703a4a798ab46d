"""A local WaveSpeed API for offline DAG development, tests and benchmarks.

It speaks the ``/api/v3/`` protocol of WaveSpeedAI closely enough that the official ``wavespeed``
SDK works against it unchanged: submit (async and sync mode), result polling, list, delete,
balance, webhook secret, both upload flows, signed webhooks. Outputs are real files served under
``/media/``. Predictions end by test triggers in input URLs (see `outcomes`), and `FaultConfig`
injects network and gateway faults. ``/_emulator/`` holds test-only endpoints (see `admin`).

Run it in-process with `WaveSpeedEmulator`, as a child process with `WaveSpeedEmulator.spawn`, or
from a shell with ``python -m airflow_provider_wavespeed.emulator --api-key KEY --port 8080``.

It depends on aiohttp alone, never on Airflow or the rest of the provider, so that benchmarks and
the CLI start in a fraction of a second.
"""

from __future__ import annotations

from airflow_provider_wavespeed.emulator.config import EmulatorConfig
from airflow_provider_wavespeed.emulator.faults import FaultConfig
from airflow_provider_wavespeed.emulator.server import EmulatorProcess, WaveSpeedEmulator

__all__ = ["EmulatorConfig", "EmulatorProcess", "FaultConfig", "WaveSpeedEmulator"]
