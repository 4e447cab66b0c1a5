"""A local Slack Socket Mode server for tests: aiohttp WebSockets on 127.0.0.1.

Set the fake Web API's ``socket_url`` to :attr:`url`; the app's ``apps.connections.open`` then
lands here. Each connection gets Slack's ``hello``; :meth:`send` pushes an envelope
(``events_api``, ``slash_commands``, ``interactive``) to the newest connection and
:meth:`wait_ack` waits for the app's ``{"envelope_id": …}`` ack; :attr:`acked_on` says on which
connection (index into :attr:`connections`) each ack arrived. :meth:`refresh` sends Slack's
``disconnect`` (``refresh_requested``) so the client reconnects; :meth:`drop` closes the socket
from the server side. Like Slack, the fake can redeliver an envelope nobody acked: pass its
``envelope_id`` to :meth:`send` again (with ``retry_attempt`` > 0) once the app reconnected.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class FakeSlackSocket:
    connections: list[web.WebSocketResponse] = field(default_factory=list)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked_on: dict[str, list[int]] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=fake"

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/link/", self._connect)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for ws in list(self.connections):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        index = len(self.connections)
        self.connections.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.connections),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0001"},
            }
        )
        await self._notify()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if isinstance(data, dict) and "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
                    self.acked_on.setdefault(data["envelope_id"], []).append(index)
                    await self._notify()
        return ws

    async def wait_connections(self, count: int, seconds: float = 10.0) -> None:
        await self._wait(lambda: len(self.live()) >= 1 and len(self.connections) >= count, seconds)

    def live(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self.connections if not ws.closed]

    async def send(
        self,
        payload: dict[str, Any],
        kind: str = "events_api",
        retry_attempt: int = 0,
        envelope_id: str | None = None,
        then_drop: bool = False,
    ) -> str:
        """Push one envelope to the newest live connection; returns its envelope id.

        A given ``envelope_id`` redelivers that envelope (Slack does so for unacked ones);
        ``then_drop`` closes that connection right after sending (an ack sent later is lost).
        """
        envelope_id = envelope_id or f"env-{next(self._ids)}"
        ws = self.live()[-1]
        await ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
                "payload": payload,
            }
        )
        if then_drop:
            await ws.close()
        return envelope_id

    async def wait_ack(
        self, envelope_id: str, seconds: float = 10.0, *, connection: int | None = None
    ) -> dict[str, Any]:
        """The app's ack of ``envelope_id`` (on ``connection``, an index, if given)."""
        if connection is None:
            await self._wait(lambda: envelope_id in self.acks, seconds)
        else:
            await self._wait(lambda: connection in self.acked_on.get(envelope_id, ()), seconds)
        return self.acks[envelope_id]

    async def refresh(self) -> None:
        """Slack's ``disconnect`` message: the client should open a new connection."""
        await self.live()[-1].send_json(
            {"type": "disconnect", "reason": "refresh_requested", "debug_info": {}}
        )

    async def drop(self) -> None:
        for ws in self.live():
            await ws.close()

    async def _wait(self, ready: Any, seconds: float) -> None:
        assert self._changed is not None
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            raise AssertionError(f"fake Slack socket: condition not met in {seconds}s") from None
