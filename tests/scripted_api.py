"""A loopback HTTP server that answers from a script of canned, documented responses.

For the hook's async side: real aiohttp on both ends, so timeouts, dropped connections and
``Retry-After`` go through the same code as in the triggerer.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Reply:
    status: int = 200
    json_body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    delay: float = 0.0


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class ScriptedAPI:
    """Queue replies per (method, path); the last reply of a queue repeats."""

    def __init__(self) -> None:
        self._replies: dict[tuple[str, str], list[Reply]] = defaultdict(list)
        self.requests: list[SeenRequest] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._server = TestServer(app, host="127.0.0.1")

    @property
    def base_url(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    def add(self, method: str, path: str, *replies: Reply) -> None:
        self._replies[(method, path)].extend(replies)

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.requests if (seen.method, seen.path) == (method, path))

    async def start(self) -> None:
        await self._server.start_server()

    async def close(self) -> None:
        await self._server.close()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(SeenRequest(request.method, request.path, dict(request.headers)))
        queue = self._replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"code": 404, "message": "not scripted", "data": None}, status=404)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop_connection:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
        return web.Response(
            status=reply.status,
            body=json.dumps(reply.json_body).encode(),
            headers={"Content-Type": "application/json", **reply.headers},
        )
