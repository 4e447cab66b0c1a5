"""What the local SaaS fakes share: an aiohttp server on 127.0.0.1, scripted answers first
(``script``: ``(status, headers)`` per call, e.g. a 429 with ``Retry-After``), basic auth
checked on every call (the tool's own 401 body otherwise), every call recorded.

``hang_after_create``: a create stores the record, sets ``created`` and then does not answer
until ``release()`` -- the caller never hears the key (a crash test kills it meanwhile)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeSaaS:
    username: str = ""
    password: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, JSON body
    base_url: str = ""
    hang_after_create: bool = False
    created: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def after_create(self) -> None:
        """Called by a fake's create handler once the record is stored."""
        self.created.set()
        if self.hang_after_create:
            await self._released.wait()

    def release(self) -> None:
        self.hang_after_create = False
        self._released.set()

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def refused(self, status: int) -> web.Response:
        """The tool's answer to bad credentials, or to a scripted status."""
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        self.routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.method, request.path, body))
        if self.script:
            status, headers = self.script.pop(0)
            answer = self.refused(status)
            answer.headers.update(headers)
            return answer
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return self.refused(401)
        response: web.StreamResponse = await handler(request)
        return response
