"""A local Slack Web API for tests: an aiohttp server on 127.0.0.1 that records every call.

Point ``[slack] api_base_url`` (or an ``AsyncWebClient(base_url=...)``) at :attr:`base_url`.
Methods follow Slack's documented request and response shapes: ``auth.test``, ``users.info``
(with an email, without one as when ``users:read.email`` is missing, or ``missing_scope``),
``chat.postMessage``, ``chat.getPermalink``, ``views.open``, ``conversations.history``,
``conversations.replies`` and ``apps.connections.open`` (answers :attr:`socket_url`).
Anything else answers ``{"ok": false, "error": "unknown_method"}``. A method in :attr:`held`
answers only once its ``asyncio.Event`` is set: Slack being slow, without sleeping.

Files shared in messages: :meth:`add_file` stores one and returns Slack's file object for it,
with ``url_private``/``url_private_download`` on this server (``/files-pri/…``), which answers
like Slack's file host: the bytes for the bot token, Slack's sign-in page (HTML, 200) without
it. Downloads are recorded as calls of method ``files-pri`` (``held`` works for them too);
:attr:`file_redirects` answers a file's path with a 302 to another URL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0001"


@dataclass(frozen=True)
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class FakeSlackAPI:
    """The fake. Tune it through its attributes between calls."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    email_scope: bool = True  # False: users.info omits profile.email (users:read.email missing)
    users_scope: bool = True  # False: users.info answers missing_scope (users:read missing)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # method -> errors to answer (in order) before succeeding again; an int is an HTTP status
    failures: dict[str, list[str | int]] = field(default_factory=dict)
    socket_url: str = ""
    delay_seconds: float = 0.0  # answer every call this much later (Slack's own latency)
    held: dict[str, asyncio.Event] = field(default_factory=dict)  # method -> answer once set
    calls: list[Call] = field(default_factory=list)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (data, type)
    file_redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    _runner: web.AppRunner | None = None
    port: int = 0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def add_user(
        self, user_id: str, email: str | None = None, name: str = "", *, bot: bool = False
    ) -> None:
        profile: dict[str, Any] = {"real_name": name, "display_name": name.split(" ")[0]}
        if email:
            profile["email"] = email
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name.lower().replace(" ", "."),
            "real_name": name,
            "is_bot": bot,
            "profile": profile,
        }

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_get("/files-pri/{path:.+}", self._file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_file(
        self, file_id: str, name: str, data: bytes, mimetype: str, *, size: int | None = None
    ) -> dict[str, Any]:
        """Store a file; Slack's file object for it (as in a ``file_share`` message)."""
        path = f"T0001-{file_id}/download/{name}"
        self.files[path] = (data, mimetype)
        url = f"http://127.0.0.1:{self.port}/files-pri/{path}"
        return {
            "id": file_id,
            "created": 1700000000,
            "timestamp": 1700000000,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rpartition(".")[2],
            "user": "U0ALICE",
            "editable": False,
            "size": len(data) if size is None else size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "url_private": url.replace("/download/", "/"),
            "url_private_download": url,
            "permalink": f"https://example.slack.com/files/U0ALICE/{file_id}/{name}",
        }

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.calls.append(Call("files-pri", {"path": path}, token))
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
        if "files-pri" in self.held:
            await self.held["files-pri"].wait()
        if path in self.file_redirects:
            raise web.HTTPFound(self.file_redirects[path])
        if path not in self.files:
            return web.Response(status=404, text="file not found")
        if not token or not token.startswith("xoxb-"):
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        data, mimetype = self.files[path]
        return web.Response(body=data, content_type=mimetype)

    # ---- looking at what happened ---------------------------------------------------------
    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, method: str, count: int = 1, seconds: float = 10.0) -> list[Call]:
        """The calls of ``method`` once there are at least ``count``; AssertionError after."""
        assert self._changed is not None
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(lambda: len(self.called(method)) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{method} was called {len(self.called(method))} times, expected {count}"
            ) from None
        return self.called(method)

    # ---- the API ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                args.update(body if isinstance(body, dict) else {})
            else:
                args.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.calls.append(Call(method, args, token))
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if method in self.held:
            await self.held[method].wait()
        pending = self.failures.get(method)
        if pending:
            failure = pending.pop(0)
            if isinstance(failure, int):
                return web.Response(status=failure, text="upstream trouble")
            headers = {"Retry-After": "1"} if failure == "ratelimited" else None
            status = 429 if failure == "ratelimited" else 200
            return web.json_response(
                {"ok": False, "error": failure}, status=status, headers=headers
            )
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(args, token)
        return web.json_response(result)

    def _auth_test(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        if not token or not token.startswith("xoxb-"):
            return {"ok": False, "error": "invalid_auth"}
        return {
            "ok": True,
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "spoc",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _users_info(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        if not self.users_scope:
            return {
                "ok": False,
                "error": "missing_scope",
                "needed": "users:read",
                "provided": "chat:write,im:history",
            }
        user = self.users.get(str(args.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        user = json.loads(json.dumps(user))
        if not self.email_scope:
            user["profile"].pop("email", None)
        return {"ok": True, "user": user}

    def _chat_postMessage(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel or channel.startswith("CGONE"):
            return {"ok": False, "error": "channel_not_found"}
        ts = f"1800000000.{next(self._ts):06d}"
        if channel.startswith("U"):
            channel = "D" + channel[1:]  # a user id posts in the app's DM with that user
        message = {"type": "message", "text": args.get("text"), "bot_id": BOT_ID, "ts": ts}
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_getPermalink(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _views_open(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        return {"ok": True, "view": {"id": "VOPENED", **(view or {})}}

    def _conversations_history(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        found = self.messages.get((str(args.get("channel")), str(args.get("latest"))))
        if found is not None and found.get("thread_ts") not in (None, found.get("ts")):
            found = None  # a reply in a thread is not in the channel's history
        return {"ok": True, "messages": [found] if found else [], "has_more": False}

    def _conversations_replies(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        found = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if found is None:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": [found], "has_more": False}

    def _apps_connections_open(self, args: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        if not token or not token.startswith("xapp-"):
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": self.socket_url}
