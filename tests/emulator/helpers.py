"""A thin requests client for the emulator's API, so tests read as API calls, not HTTP plumbing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import requests

LIPSYNC = "sync/lipsync-1.9.0-beta"
VIDEO = "https://media.example.com/interview.mp4"
AUDIO = "https://media.example.com/dub.wav"


def lipsync_inputs(**overrides: Any) -> dict[str, Any]:
    return {"video": VIDEO, "audio": AUDIO, **overrides}


class Clips(NamedTuple):
    """Real media made once per test session (the ``clips`` fixture): 320x240 25 fps H.264 videos, WAV tones."""

    video_2s: Path
    video_3s: Path
    audio_2s: Path
    audio_3s: Path


class RunningEmulator(Protocol):
    """What the tests need of an emulator, in-process (`WaveSpeedEmulator`) or a child (`EmulatorProcess`)."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_key(self) -> str: ...


class Api:
    """Calls the emulator with its key; every request stays on 127.0.0.1 (no proxies from the environment)."""

    def __init__(self, emulator: RunningEmulator) -> None:
        self.base_url = emulator.base_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {emulator.api_key}"
        self.anonymous = requests.Session()
        self.anonymous.trust_env = False

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base_url + path, timeout=30, **kwargs)

    def submit(self, inputs: dict[str, Any] | None = None, model: str = LIPSYNC, **kwargs: Any) -> requests.Response:
        return self.post(f"/api/v3/{model}", json=lipsync_inputs() if inputs is None else inputs, **kwargs)

    def submit_ok(self, inputs: dict[str, Any] | None = None, model: str = LIPSYNC) -> dict[str, Any]:
        """Submit and return the created prediction's data."""
        response = self.submit(inputs, model)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def result(self, prediction_id: str) -> dict[str, Any]:
        response = self.get(f"/api/v3/predictions/{prediction_id}/result")
        assert response.status_code == 200, response.text
        envelope: dict[str, Any] = response.json()
        assert envelope["code"] == 200
        return envelope["data"]

    def wait_for(self, prediction_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll until the prediction reaches one of ``statuses`` (default: completed or failed)."""
        wanted = statuses or ("completed", "failed")
        deadline = time.monotonic() + timeout
        while True:
            data = self.result(prediction_id)
            if data["status"] in wanted:
                return data
            assert time.monotonic() < deadline, f"still {data['status']} after {timeout}s"
            time.sleep(0.05)

    def upload(self, path: Path, filename: str | None = None) -> str:
        """Upload a file through the one-step upload and return its URL, which only this emulator can read."""
        with path.open("rb") as file:
            response = self.post("/api/v3/media/upload/binary", files={"file": (filename or path.name, file)})
        assert response.status_code == 200, response.text
        url: str = response.json()["data"]["download_url"]
        return url

    def download(self, url: str) -> bytes:
        """Fetch a served file without the key, as a CDN would serve it."""
        assert url.startswith(self.base_url), url
        response = self.anonymous.get(url, timeout=30)
        assert response.status_code == 200
        return response.content
