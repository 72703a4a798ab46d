"""A local WaveSpeed API for offline DAG development, tests and benchmarks.

It speaks the ``/api/v3/`` protocol of WaveSpeedAI closely enough that the official ``wavespeed``
SDK works against it unchanged: submit (async and sync mode), result polling, list, delete,
balance, webhook secret, both upload flows, signed webhooks. Outputs are real files served under
``/media/``: a lipsync of two uploaded files is a playable MP4 of the video re-timed to the audio
as ``sync_mode`` says (see `render`; an upload that is not media fails the prediction), and inputs
it cannot fetch get a placeholder (see `media.render_output`). Predictions end by test triggers in
input URLs (see `outcomes`), and `FaultConfig` injects network and gateway faults.
``/_emulator/`` holds test-only endpoints (see `admin`).

Run it in-process with `WaveSpeedEmulator`, as a child process with `WaveSpeedEmulator.spawn`, or
from a shell with ``wavespeed-emulator --api-key KEY --port 8080`` (or ``python -m wavespeed_emulator``).

It depends on aiohttp alone, never on Airflow or the Airflow provider, so that benchmarks and the
CLI start in a fraction of a second and any client's tests can use it; renders need the optional
``imageio-ffmpeg`` (the ``render`` extra), without which lipsync outputs fall back to placeholders
after one warning.
"""

from __future__ import annotations

from wavespeed_emulator.config import EmulatorConfig
from wavespeed_emulator.faults import FaultConfig
from wavespeed_emulator.server import EmulatorProcess, WaveSpeedEmulator

__version__ = "0.1.0"

__all__ = ["EmulatorConfig", "EmulatorProcess", "FaultConfig", "WaveSpeedEmulator"]
