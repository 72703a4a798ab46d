from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from tests.emulator.helpers import AUDIO, LIPSYNC, lipsync_inputs
from tests.emulator_fixtures import EmulatorFactory, fast_emulator_config
from wavespeed_emulator import WaveSpeedEmulator


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


@dataclass
class Receiver:
    """A local webhook endpoint that answers with ``statuses`` in turn (then 200) and keeps every POST."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.arrived.set()
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/wavespeed", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    hook.url = f"http://{host}:{port}/hooks/wavespeed?tenant=a"
    yield hook
    await runner.cleanup()


async def submit(emulator: WaveSpeedEmulator, inputs: dict[str, Any], webhook: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emulator.api_key}"}) as session,
        session.post(f"{emulator.base_url}/api/v3/{LIPSYNC}", params={"webhook": webhook}, json=inputs) as response,
    ):
        envelope: dict[str, Any] = await response.json()
        assert response.status == 200, envelope
        return envelope


async def webhook_secret(emulator: WaveSpeedEmulator) -> str:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emulator.api_key}"}) as session,
        session.get(f"{emulator.base_url}/api/v3/webhook/secret") as response,
    ):
        secret: str = (await response.json())["data"]["secret"]
        return secret


def independently_verified(delivery: Delivery, secret: str) -> bool:
    """WaveSpeed's documented check: HMAC-SHA256 over id.timestamp.body, key = secret without whsec_."""
    webhook_id = delivery.headers["webhook-id"]
    timestamp = delivery.headers["webhook-timestamp"]
    version, _, signature = delivery.headers["webhook-signature"].partition(",")
    key = secret.removeprefix("whsec_").encode()
    expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + delivery.body, hashlib.sha256).hexdigest()
    return version == "v3" and hmac.compare_digest(signature, expected) and abs(time.time() - int(timestamp)) < 60


async def test_completed_prediction_posts_a_signed_webhook_with_the_documented_payload(
    emulator: WaveSpeedEmulator, receiver: Receiver
) -> None:
    created = (await submit(emulator, lipsync_inputs(), receiver.url))["data"]

    await asyncio.wait_for(receiver.arrived.wait(), 10)

    [delivery] = receiver.deliveries
    assert independently_verified(delivery, await webhook_secret(emulator))
    payload = delivery.payload
    assert set(payload) == {
        "id", "model", "input", "outputs", "urls", "has_nsfw_contents", "status", "created_at", "error",
    }  # fmt: skip
    assert payload["id"] == created["id"]
    assert payload["status"] == "completed"
    assert payload["input"] == lipsync_inputs(sync_mode="cut_off")
    assert payload["outputs"][0].endswith(f"/media/outputs/{created['id']}/output.mp4")
    assert payload["urls"] == created["urls"]
    assert payload["created_at"] == created["created_at"]
    assert (payload["has_nsfw_contents"], payload["error"]) == ([False], "")
    assert "code" not in payload, "the webhook payload is bare, not the envelope"


async def test_failed_prediction_posts_a_webhook_without_outputs(
    emulator: WaveSpeedEmulator, receiver: Receiver
) -> None:
    await submit(emulator, lipsync_inputs(video="https://x.invalid/v.mp4"), receiver.url)

    await asyncio.wait_for(receiver.arrived.wait(), 10)

    payload = receiver.deliveries[0].payload
    assert payload["status"] == "failed"
    assert payload["error"].startswith("Media access failed: video URL")
    assert "outputs" not in payload


async def test_rejected_webhook_is_retried_and_every_attempt_is_signed(
    emulator: WaveSpeedEmulator, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    await submit(emulator, lipsync_inputs(), receiver.url)

    await asyncio.wait_for(receiver.arrived.wait(), 10)

    secret = await webhook_secret(emulator)
    assert len(receiver.deliveries) == 3
    assert all(independently_verified(delivery, secret) for delivery in receiver.deliveries)
    assert len({delivery.headers["webhook-id"] for delivery in receiver.deliveries}) == 1
    [record] = emulator.stats()["webhooks"]["deliveries"]
    assert (record["outcome"], record["attempts"], record["response_status"]) == ("delivered", 3, 200)


async def test_webhook_that_never_succeeds_is_recorded_failed(
    emulator_factory: EmulatorFactory, receiver: Receiver
) -> None:
    emulator = emulator_factory(webhook_attempts=2)
    receiver.statuses = [500, 500]
    prediction_id = (await submit(emulator, lipsync_inputs(audio=f"{AUDIO}?emulator_seconds=0"), receiver.url))["data"][
        "id"
    ]

    for _ in range(100):
        webhooks = emulator.stats()["webhooks"]
        if webhooks["failed"]:
            break
        await asyncio.sleep(0.05)

    assert webhooks["deliveries"][0]["id"] == prediction_id
    assert (webhooks["failed"], webhooks["deliveries"][0]["attempts"]) == (1, 2)


async def test_webhook_to_a_non_loopback_host_is_refused_not_sent(emulator: WaveSpeedEmulator) -> None:
    await submit(emulator, lipsync_inputs(audio=f"{AUDIO}?emulator_seconds=0"), "https://hooks.example.com/x")

    for _ in range(100):
        webhooks = emulator.stats()["webhooks"]
        if webhooks["refused"]:
            break
        await asyncio.sleep(0.05)

    assert (webhooks["refused"], webhooks["deliveries"][0]["attempts"]) == (1, 0)


async def test_webhook_that_is_not_an_http_url_is_a_400(emulator: WaveSpeedEmulator) -> None:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emulator.api_key}"}) as session,
        session.post(
            f"{emulator.base_url}/api/v3/{LIPSYNC}", params={"webhook": "ftp://x/y"}, json=lipsync_inputs()
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["message"] == "Invalid webhook URL: 'ftp://x/y' is not an http(s) URL"


async def test_deleted_prediction_sends_no_webhook(emulator: WaveSpeedEmulator, receiver: Receiver) -> None:
    prediction_id = (await submit(emulator, lipsync_inputs(), receiver.url))["data"]["id"]
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emulator.api_key}"}) as session,
        session.delete(f"{emulator.base_url}/api/v3/predictions/{prediction_id}") as response,
    ):
        assert response.status == 200

    await asyncio.sleep(0.6)

    assert receiver.deliveries == []


async def test_a_webhook_due_when_the_emulator_stopped_is_sent_once_after_its_restart(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = fast_emulator_config(data_dir=tmp_path, prediction_seconds=(0.5, 0.5))
    first = WaveSpeedEmulator(config).start()
    config = replace(config, port=urlsplit(first.base_url).port or 0)
    prediction_id = (await submit(first, lipsync_inputs(), receiver.url))["data"]["id"]
    first.stop()
    assert receiver.deliveries == []

    with WaveSpeedEmulator(config):
        await asyncio.wait_for(receiver.arrived.wait(), 10)
    with WaveSpeedEmulator(config):
        await asyncio.sleep(1.0)

    assert [(delivery.payload["id"], delivery.payload["status"]) for delivery in receiver.deliveries] == [
        (prediction_id, "completed")
    ]
