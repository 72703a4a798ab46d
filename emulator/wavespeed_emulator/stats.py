"""Counters a test or benchmark reads back through ``GET /_emulator/stats``.

They answer the questions a client's behaviour is judged by: how often it polled, how many faults
it met, and above all whether it ever submitted the same input twice (a duplicate submit is a
second paid task, the failure a careful client must avoid).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wavespeed_emulator.webhooks import WebhookDelivery, WebhookOutcome

if TYPE_CHECKING:
    from collections.abc import Mapping

DROPPED = "dropped"
"""The status stats record for a connection closed without a response."""


@dataclass
class _SubmittedInput:
    model: str
    count: int = 0


def input_key(model: str, inputs: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a model and its inputs: equal keys mean the same task."""
    canonical = json.dumps({"model": model, "inputs": inputs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class EmulatorStats:
    """Request, submit, fault and webhook counters since start or the last reset."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._requests: Counter[str] = Counter()
        self._responses: Counter[str] = Counter()
        self._responses_by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._submits: dict[str, _SubmittedInput] = {}
        self._faults: Counter[str] = Counter()
        self._faults_after_accept = 0
        self._faults_by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._faults_after_accept_by_route: Counter[str] = Counter()
        self._fault_times_by_prediction: defaultdict[str, list[float]] = defaultdict(list)
        self._webhooks: list[WebhookDelivery] = []

    def record_response(self, route: str, status: str) -> None:
        """Count one request to ``route`` answered with ``status`` (an HTTP code or `DROPPED`)."""
        self._requests[route] += 1
        self._responses[status] += 1
        self._responses_by_route[route][status] += 1

    def record_submit(self, model: str, inputs: Mapping[str, Any]) -> None:
        submitted = self._submits.setdefault(input_key(model, inputs), _SubmittedInput(model))
        submitted.count += 1

    def record_fault(self, kind: str, *, route: str, after_accept: bool, prediction_id: str | None = None) -> None:
        """Count one fault; ``prediction_id``: the prediction the faulted request asked about, if any."""
        self._faults[kind] += 1
        self._faults_after_accept += after_accept
        self._faults_by_route[route][kind] += 1
        self._faults_after_accept_by_route[route] += after_accept
        if prediction_id is not None:
            self._fault_times_by_prediction[prediction_id].append(time.time())

    def record_webhook(self, delivery: WebhookDelivery) -> None:
        self._webhooks.append(delivery)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every counter."""
        outcomes = Counter(delivery.outcome for delivery in self._webhooks)
        return {
            "requests": dict(self._requests),
            "responses": dict(self._responses),
            "responses_by_route": {route: dict(counts) for route, counts in self._responses_by_route.items()},
            "submits": sum(submitted.count for submitted in self._submits.values()),
            "submits_by_input": {
                key: {"model": submitted.model, "count": submitted.count} for key, submitted in self._submits.items()
            },
            "duplicate_submits": sum(submitted.count - 1 for submitted in self._submits.values()),
            "faults": dict(self._faults),
            "faults_after_accept": self._faults_after_accept,
            "faults_by_route": {route: dict(counts) for route, counts in self._faults_by_route.items()},
            "faults_after_accept_by_route": dict(self._faults_after_accept_by_route),
            # When (Unix time) faults struck the requests about each prediction: what delayed a client
            # in noticing its end, besides its own schedule.
            "fault_times_by_prediction": {key: list(times) for key, times in self._fault_times_by_prediction.items()},
            "webhooks": {
                **{outcome.value: outcomes[outcome] for outcome in WebhookOutcome},
                "deliveries": [delivery.to_json() for delivery in self._webhooks],
            },
        }
