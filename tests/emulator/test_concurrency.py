from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.emulator.helpers import lipsync_inputs
from wavespeed_emulator import WaveSpeedEmulator

CLIENTS = 300


async def test_hundreds_of_keep_alive_clients_poll_without_a_single_error(emulator: WaveSpeedEmulator) -> None:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def client() -> list[int]:
            async with session.post(f"{emulator.base_url}/api/v3/sync/lipsync-2", json=lipsync_inputs()) as response:
                statuses = [response.status]
                result_url = (await response.json())["data"]["urls"]["get"]
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                async with session.get(result_url) as response:
                    statuses.append(response.status)
                    await response.read()
                await asyncio.sleep(0.2)
            return statuses

        results = await asyncio.gather(*(client() for _ in range(CLIENTS)))

    statuses = [status for client_statuses in results for status in client_statuses]
    assert set(statuses) == {200}
    assert emulator.stats()["submits"] == CLIENTS
