"""The ``{"code", "message", "data"}`` envelope that wraps every WaveSpeed API response.

Errors keep the same shape with the HTTP status repeated as ``code`` and ``data: null``, so a client
can parse every answer the same way. Handlers raise `ApiError` instead of building error
responses, which keeps the shape in one place.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """A request the API refuses; it becomes ``{"code": status, "message": message, "data": null}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def success(data: Any) -> web.Response:
    """Answer 200 with ``data`` in the success envelope."""
    return web.json_response({"code": 200, "message": "success", "data": data})


def failure(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Answer ``status`` with the error envelope."""
    return web.json_response({"code": status, "message": message, "data": None}, status=status, headers=headers)
