"""WaveSpeed's answers as its documentation shows them, for tests that script the API."""

from __future__ import annotations

BASE = "https://api.wavespeed.test"
MODEL = "sync/lipsync-1.9.0-beta"
RESULT_URL = f"{BASE}/api/v3/predictions/req-1/result"


def envelope(data: object, code: int = 200, message: str = "success") -> dict[str, object]:
    return {"code": code, "message": message, "data": data}


def prediction(status: str = "created", **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "req-1",
        "model": MODEL,
        "outputs": [],
        "urls": {"get": RESULT_URL},
        "has_nsfw_contents": [],
        "status": status,
        "created_at": "2026-11-23T10:00:00.000Z",
        "error": "",
        "timings": {"inference": 0},
    }
    if status == "completed":
        data.update(outputs=["https://cdn.test/out.mp4"], has_nsfw_contents=[False])
    data.update(overrides)
    return envelope(data)
