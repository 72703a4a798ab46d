"""Signed webhook delivery, as WaveSpeed sends it when a prediction completes or fails.

Each POST carries the bare prediction payload and three headers: ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v3,<hex HMAC-SHA256>`` over
``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed with the account secret minus its ``whsec_``
prefix (the raw characters, not base64-decoded).

The emulator only ever posts to loopback addresses (127.0.0.0/8, ``::1``, ``localhost``): a
webhook URL anywhere else is refused and counted, so a test or a DAG pointed at the emulator can
never make this machine send traffic elsewhere. Redirects are not followed, for the same reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import aiohttp

from wavespeed_emulator.loopback import is_loopback_url

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the documented prefix, not a secret
SIGNATURE_VERSION = "v3"
_ATTEMPT_TIMEOUT = aiohttp.ClientTimeout(total=10)


class WebhookOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True)
class WebhookDelivery:
    """How one webhook ended, for the stats."""

    prediction_id: str
    url: str
    outcome: WebhookOutcome
    attempts: int
    response_status: int | None
    finished_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.prediction_id,
            "url": self.url,
            "outcome": self.outcome.value,
            "attempts": self.attempts,
            "response_status": self.response_status,
            "finished_at": self.finished_at,
        }


def new_webhook_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def sign_webhook(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery attempt."""
    key = secret.removeprefix(SECRET_PREFIX).encode()
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return f"{SIGNATURE_VERSION},{hmac.new(key, signed, hashlib.sha256).hexdigest()}"


class WebhookSender:
    """Posts signed webhooks, retrying a few times with a growing pause, and reports each outcome."""

    def __init__(
        self,
        *,
        secret: str,
        attempts: int,
        retry_seconds: float,
        on_delivery: Callable[[WebhookDelivery], None],
    ) -> None:
        self.secret = secret
        self._attempts = attempts
        self._retry_seconds = retry_seconds
        self._on_delivery = on_delivery
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, prediction_id: str, url: str, payload: dict[str, Any]) -> WebhookDelivery:
        if not is_loopback_url(url):
            logger.warning("Refusing webhook for prediction %s: the emulator only posts to loopback", prediction_id)
            return self._finish(prediction_id, url, WebhookOutcome.REFUSED, 0, None)
        body = json.dumps(payload).encode()
        webhook_id = f"msg_{uuid.uuid4().hex}"
        response_status: int | None = None
        for attempt in range(1, self._attempts + 1):
            response_status = await self._post(url, webhook_id, body)
            if response_status is not None and 200 <= response_status < 300:
                return self._finish(prediction_id, url, WebhookOutcome.DELIVERED, attempt, response_status)
            if attempt < self._attempts:
                await asyncio.sleep(self._retry_seconds * attempt)
        logger.warning("Webhook for prediction %s failed after %d attempts", prediction_id, self._attempts)
        return self._finish(prediction_id, url, WebhookOutcome.FAILED, self._attempts, response_status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, url: str, webhook_id: str, body: bytes) -> int | None:
        """One attempt; the response status, or None when no response came."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_ATTEMPT_TIMEOUT)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign_webhook(self.secret, webhook_id, timestamp, body),
        }
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.info("Webhook attempt to %s got no response: %s", url, error)
            return None

    def _finish(
        self,
        prediction_id: str,
        url: str,
        outcome: WebhookOutcome,
        attempts: int,
        response_status: int | None,
    ) -> WebhookDelivery:
        delivery = WebhookDelivery(prediction_id, url, outcome, attempts, response_status, time.time())
        self._on_delivery(delivery)
        return delivery
