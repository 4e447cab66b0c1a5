"""A gateway with Slack enabled against the fake Slack Web API, and signed Slack requests.

Requests are signed like Slack signs them, with slack_sdk's ``SignatureVerifier``; the Web
API the gateway calls back (``auth.test``, ``users.info``, ``chat.postMessage`` …) is
``tests.fakes.slack_api.FakeSlackAPI`` on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlackAPI
from tests.fakes.slack_socket import FakeSlackSocket
from tests.integration.gateway_harness import GatewayHarness, RelaySink

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-1234-5678-fake"
APP_TOKEN = "xapp-1-A0001-fake"
ALICE, ALICE_EMAIL = "U0ALICE", "alice@example.org"
BOB, BOB_EMAIL = "U0BOB", "bob@example.org"
DM = "D0ALICE"
GENERAL = "C0GENERAL"

IVR = """
[ivr]
greeting = "Welcome"
[[ivr.options]]
digit = "1"
label = "a broken device"
category = "broken_device"
kind = "incident"
[[ivr.options]]
digit = "2"
label = "a locked account"
category = "locked_account"
kind = "service_request"
"""


def slack_config(api: FakeSlackAPI, mode: str = "http", reaction: str = "ticket") -> str:
    return f"""
[slack]
enabled = true
mode = "{mode}"
api_base_url = "{api.base_url}"
reaction = "{reaction}"
users_cache_ttl_seconds = 600
{IVR}"""


class SlackDesk:
    """The harness, the fake Web API and a client that talks like Slack does."""

    def __init__(self, harness: GatewayHarness, api: FakeSlackAPI) -> None:
        self.harness = harness
        self.api = api
        self._ts = 1_700_000_000

    @property
    def events_url(self) -> str:
        return self.harness.base_url + "/slack/events"

    def next_ts(self) -> str:
        self._ts += 1
        return f"{self._ts}.000100"

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
        assert signature is not None
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
            **(headers or {}),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.events_url, data=body, headers=sent) as response,
        ):
            return response.status, await response.text()

    async def event(
        self, event: Mapping[str, Any], event_id: str = "Ev0001", **kw: Any
    ) -> tuple[int, str]:
        return await self.post(
            json.dumps(event_callback(event, event_id)).encode(), "application/json", **kw
        )

    async def form(self, fields: Mapping[str, str], **kw: Any) -> tuple[int, str]:
        return await self.post(
            urlencode(fields).encode(), "application/x-www-form-urlencoded", **kw
        )

    async def interaction(self, payload: Mapping[str, Any], **kw: Any) -> tuple[int, str]:
        return await self.form({"payload": json.dumps(payload)}, **kw)

    async def slack_tickets(self) -> list[dict[str, Any]]:
        status, body = await self.harness.api("GET", "/api/tickets", channel="slack")
        assert status == 200, body
        tickets: list[dict[str, Any]] = body["tickets"]
        return tickets


def event_callback(event: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0001",
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_700_000_000,
        "authorizations": [
            {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True, "enterprise_id": None}
        ],
        "is_ext_shared_channel": False,
    }


def dm(text: str, ts: str, *, user: str = ALICE, thread_ts: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "channel": DM,
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def channel_message(
    text: str, ts: str, *, user: str = ALICE, thread_ts: str | None = None, kind: str = "message"
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "channel": GENERAL,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }
    if kind == "message":
        event["channel_type"] = "channel"
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


@contextlib.asynccontextmanager
async def slack_desk(
    directory: Path,
    db_url: str,
    *,
    mode: str = "http",
    reaction: str = "ticket",
    without: tuple[str, ...] = (),
) -> AsyncIterator[tuple[SlackDesk, FakeSlackSocket | None]]:
    api = FakeSlackAPI()
    await api.start()
    api.add_user(ALICE, ALICE_EMAIL, "Alice Example")
    api.add_user(BOB, BOB_EMAIL, "Bob Builder")
    socket: FakeSlackSocket | None = None
    if mode == "socket":
        socket = FakeSlackSocket()
        await socket.start()
        api.socket_url = socket.url
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(directory, db_url, sink, slack_config(api, mode, reaction))
    harness.environ.update(
        SPOC_SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SPOC_SLACK_BOT_TOKEN=BOT_TOKEN,
        SPOC_SLACK_APP_TOKEN=APP_TOKEN,
    )
    for name in without:
        del harness.environ[name]
    try:
        await harness.start()
        yield SlackDesk(harness, api), socket
    finally:
        await harness.stop()
        await sink.stop()
        if socket is not None:
            await socket.stop()
        await api.stop()
