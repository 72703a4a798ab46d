"""The emulator's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wavespeed_emulator.faults import FaultConfig

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes one emulator; all durations are seconds.

    ``prediction_seconds`` is a (min, max) range: each prediction's processing time is drawn from
    it with an RNG seeded by ``seed``. Prices (USD): a lipsync costs ``price_per_second`` per second
    of its output, any other prediction (or one whose length cannot be measured)
    ``price_per_submit``; ``discount_rate`` (0 to 1) lowers what is charged (see `pricing`). A
    submit the balance cannot cover is refused with HTTP ``insufficient_balance_status`` and
    ``insufficient_balance_message`` in the error envelope (WaveSpeed's real answer is not
    documented); status 0 accepts it and lets the balance go negative. ``data_dir`` keeps the
    account (predictions, uploads, outputs, the ledger) across restarts (see `persistence`); None
    means a temporary directory removed on stop, and an account that lives as long as the process.
    ``public_base_url`` None means generated URLs follow the request's Host header.
    """

    api_key: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None
    public_base_url: str | None = None
    queue_seconds: float = 0.2
    prediction_seconds: tuple[float, float] = (2.0, 2.0)
    sync_wait_seconds: float = 90.0
    balance: float = 100.0
    price_per_submit: float = 0.0
    price_per_second: float = 0.025
    discount_rate: float = 0.0
    insufficient_balance_status: int = 402
    insufficient_balance_message: str = "Insufficient balance: please top up your account"
    webhook_attempts: int = 3
    webhook_retry_seconds: float = 1.0
    seed: int = 0
    backlog: int = 4096
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must not be empty: every /api/v3/ request is checked against it")
        low, high = self.prediction_seconds
        if not 0 <= low <= high:
            raise ValueError(f"prediction_seconds must be a (min, max) range with 0 <= min <= max, got {low}, {high}")
        if min(self.queue_seconds, self.sync_wait_seconds, self.price_per_submit, self.webhook_retry_seconds) < 0:
            raise ValueError(
                "queue_seconds, sync_wait_seconds, price_per_submit and webhook_retry_seconds must be >= 0"
            )
        if min(self.price_per_second, self.discount_rate) < 0 or self.discount_rate > 1:
            raise ValueError("price_per_second must be >= 0 and discount_rate between 0 and 1")
        if self.insufficient_balance_status != 0 and not 400 <= self.insufficient_balance_status <= 599:
            raise ValueError("insufficient_balance_status must be an HTTP error status (400-599), or 0 to never refuse")
        if self.webhook_attempts < 1:
            raise ValueError("webhook_attempts must be at least 1")
