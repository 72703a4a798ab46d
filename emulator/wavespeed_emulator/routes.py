"""Names of the emulated endpoints.

Stats count requests under these names and fault injection filters on them, so a test can say
"fail one result poll in three" without spelling out HTTP paths.
"""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    """One endpoint of the emulator; the API routes are the WaveSpeed ``/api/v3/`` endpoints."""

    SUBMIT = "submit"
    RESULT = "result"
    GET_PREDICTION = "get_prediction"
    LIST_PREDICTIONS = "list_predictions"
    DELETE_PREDICTIONS = "delete_predictions"
    DELETE_PREDICTION = "delete_prediction"
    BALANCE = "balance"
    MODELS = "models"
    PRICE = "price"
    WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 - a route name, not a secret
    UPLOAD = "upload"
    UPLOAD_TICKET = "upload_ticket"
    STORAGE_PUT = "storage_put"
    MEDIA = "media"


API_ROUTES = frozenset(Route) - {Route.STORAGE_PUT, Route.MEDIA}
"""The routes behind ``/api/v3/``: they need the API key and are the only ones faults apply to."""

UNMATCHED = "unmatched"
"""The name stats use for a request that matched no route."""
