"""Media put into an emulator before a DAG runs, as a person would upload it by hand (the soak, the e2e tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from pathlib import Path


def upload(emulator: Any, path: Path) -> str:
    """Upload ``path`` to ``emulator`` (its binary upload route); the URL WaveSpeed serves it at."""
    with path.open("rb") as file:
        response = requests.post(
            f"{emulator.base_url}/api/v3/media/upload/binary",
            headers={"Authorization": f"Bearer {emulator.api_key}"},
            files={"file": (path.name, file)},
            timeout=60,
        )
    response.raise_for_status()
    return str(response.json()["data"]["download_url"])
