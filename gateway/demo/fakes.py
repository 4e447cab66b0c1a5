"""The outside services ``spoc demo`` talks to, played on 127.0.0.1 so it needs no account.

:class:`FakeSlackAPI`
    the Slack Web API methods the gateway calls, in Slack's documented shapes: ``auth.test``,
    ``users.info`` (the demo's one user, with an email), ``chat.postMessage`` (the ack in the
    DM's thread; a reply), ``chat.getPermalink``. Anything else: ``{"ok": false, "error":
    "unknown_method"}``. Calls need the demo's bot token (``invalid_auth`` otherwise).
:class:`FakeTwilioAPI`
    Twilio's Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``, HTTP basic auth,
    ``201`` with a ``sid``), where an agent's SMS reply from the dashboard goes.
:class:`MailRelay`
    the company's outbound relay: an in-loop aiosmtpd server that takes every acknowledgement
    and reply and keeps it (nothing leaves the machine).

Each records what it was sent, for the demo's summary. Not for tests: they have their own,
stricter fakes under ``tests/fakes/``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

TEAM_ID = "T0DEMO"
BOT_USER_ID = "U0SPOCBOT"


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


@dataclass
class FakeSlackAPI:
    bot_token: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def add_user(self, user_id: str, name: str, email: str) -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name.lower().replace(" ", "."),
            "real_name": name,
            "is_bot": False,
            "profile": {"real_name": name, "display_name": name.split()[0], "email": email},
        }

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        self._runner, self.port = await _serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                args.update(body if isinstance(body, dict) else {})
            else:
                args.update({k: v for k, v in (await request.post()).items()})
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.bot_token.encode()):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        method = request.match_info["method"]
        if method == "auth.test":
            return web.json_response(
                {
                    "ok": True,
                    "url": "https://demo.slack.com/",
                    "team": "Demo",
                    "user": "spoc",
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "bot_id": "B0SPOCBOT",
                }
            )
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            if user is None:
                return web.json_response({"ok": False, "error": "user_not_found"})
            return web.json_response({"ok": True, "user": user})
        if method == "chat.postMessage":
            ts = f"1800000000.{next(self._ts):06d}"
            self.posted.append(args)
            message = {"type": "message", "text": args.get("text"), "ts": ts}
            return web.json_response(
                {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
            )
        if method == "chat.getPermalink":
            channel, ts = str(args.get("channel")), str(args.get("message_ts"))
            link = f"https://demo.slack.com/archives/{channel}/p{ts.replace('.', '')}"
            return web.json_response({"ok": True, "channel": channel, "permalink": link})
        return web.json_response({"ok": False, "error": "unknown_method"})


@dataclass
class FakeTwilioAPI:
    account_sid: str
    auth_token: str
    messages: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._message)
        self._runner, port = await _serve(app)
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _message(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("Authorization", "")
        if request.match_info["account"] != self.account_sid or not hmac.compare_digest(
            given.encode(), f"Basic {expected}".encode()
        ):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        message = {k: str(v) for k, v in (await request.post()).items()}
        message["sid"] = "SM" + secrets.token_hex(16)
        self.messages.append(message)
        return web.json_response(
            {"sid": message["sid"], "status": "queued", "to": message.get("To")}, status=201
        )


@dataclass
class MailRelay:
    envelopes: list[Envelope] = field(default_factory=list)
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="relay.demo", enable_SMTPUTF8=True), "127.0.0.1", 0
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: kept by the demo relay"
