"""A webhook receiver, played locally: what a tool behind a ``kind = "webhook"`` forward does.

It verifies every request's Standard Webhooks signature with its own HMAC code (written from
the spec, independent of the ``standardwebhooks`` package spoc signs with): ``webhook-
signature`` holds ``v1,<base64 HMAC-SHA256(secret, "<webhook-id>.<webhook-timestamp>.<body>")>``,
the secret being the base64 after ``whsec_``. A request that does not verify gets 401 and is
counted in ``refused``. While ``down`` every request gets 503. ``script`` is a list of
answers to give first, one per request (``(status, headers)``), e.g.
``[(429, {"Retry-After": "1"}), (503, {})]``. ``events`` has every verified request in
arrival order; ``unique`` keeps one per ``webhook-id``, as a
receiver that de-duplicates would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET = "whsec_" + base64.b64encode(b"spoc-test-webhook-secret-32bytes").decode()


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: Any, body: bytes) -> bool:
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit():
        return False
    expected = sign(secret, msg_id, ts, body)
    given = headers.get("webhook-signature", "").split(" ")
    return any(hmac.compare_digest(expected, g) for g in given)


@dataclass
class WebhookReceiver:
    secret: str = SECRET
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    attempts: int = 0
    refused: int = 0
    down: bool = False  # True: every request gets 503 (an outage)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def unique(self) -> dict[str, dict[str, Any]]:
        return dict(zip(self.ids, self.events, strict=True))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/spoc", self._receive)
        app.router.add_get("/moved", self._moved)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/spoc"

    async def _moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/spoc")

    async def _receive(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        if self.script:
            status, headers = self.script.pop(0)
            return web.json_response({"error": "scripted"}, status=status, headers=headers)
        if not verify(self.secret, request.headers, body):
            self.refused += 1
            return web.json_response({"error": "bad signature"}, status=401)
        self.ids.append(request.headers["webhook-id"])
        self.events.append(json.loads(body))
        return web.Response(status=204)


def hook_headers(secret: str, body: bytes, msg_id: str | None = None) -> dict[str, str]:
    """Headers a tool sends with a Standard-Webhooks-signed answer to ``POST /hooks/{name}``."""
    import time

    msg_id = msg_id or f"msg_{secrets.token_hex(8)}"
    ts = str(int(time.time()))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": sign(secret, msg_id, ts, body),
        "Content-Type": "application/json",
    }
