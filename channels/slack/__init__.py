"""Slack: a front door to the desk in the chat tool people already live in.

What it does
    A slack-bolt ``AsyncApp`` (``channels.slack.app``) turns DMs to the app, @mentions, the
    ``/helpdesk`` modal, the "Create ticket" message shortcut and (optionally) an emoji
    reaction into contacts, and thread replies into more contacts on the same ticket. Text is
    stored as people wrote it (Slack's escapes and markup converted, ``normalizer.mrkdwn``),
    shared files as attachments (``channels.slack.files``); edits and deletions are recorded
    on the ticket. In
    ``mode = "http"`` it is mounted on the gateway's aiohttp app at ``POST /slack/events``
    (Events API, slash command, interactivity and shortcuts on one URL); in
    ``mode = "socket"`` the same listeners run over a Socket Mode WebSocket that the channel
    opens itself and re-opens when it drops. Answers to the requester (acks with the ticket
    ref, agent replies, status notes) go through the outbox to ``channels.outbound.slack``.

Config keys (``[slack]`` -> :class:`SlackChannelSettings`)
    ``enabled``, ``mode`` (``http`` | ``socket``), ``api_base_url``, ``reaction`` (emoji name,
    ``""`` = off), ``users_cache_ttl_seconds``; secrets ``SPOC_SLACK_SIGNING_SECRET`` (HTTP),
    ``SPOC_SLACK_APP_TOKEN`` (Socket Mode), ``SPOC_SLACK_BOT_TOKEN`` (both). The modal's
    categories are the ``[ivr]`` options.

Replies (HTTP mode, as slack-bolt answers)
    ``200``  committed (or a duplicate, or ignored: bots, edits, channel chatter)
    ``401``  missing, bad or stale (> 5 min) signature: nothing is read or stored
    ``400``  a signed body that is not a Slack payload, or one not shaped as Slack documents
             it (``"event": null``, ``"actions": null`` …): ``{"error", "field"}``, nothing stored
    ``503``  the contact could not be committed: Slack retries (``X-Slack-Retry-Num``)
    ``url_verification`` gets its challenge back, ``ssl_check`` a 200.
    Over Socket Mode a 200 is the envelope ack; anything else sends no ack and Slack redelivers,
    but a malformed payload is acknowledged (and logged): redelivering it cannot help.

Idempotency key
    The message's ``channel:ts`` (shortcut/reaction: ``shortcut:``/``reaction:`` + that; modal:
    ``view:<view id>``), so retries, Socket Mode redeliveries and one message arriving as both
    ``message.im`` and ``app_mention`` are stored once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from channels.base import WebhookChannel
from channels.http_bodies import add_body_route
from channels.slack.app import (
    BotIdentity,
    KnownThread,
    SlackChannelSettings,
    SlackListeners,
    SlackUnavailable,
    build_app,
    web_client,
)
from channels.slack.files import SlackFiles
from channels.slack.payload import MalformedPayload, check_payload
from channels.slack.users import SlackUsers
from normalizer.intake import Intake
from normalizer.revision import Revisions

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class CheckedSocketModeHandler(AsyncSocketModeHandler):
    """bolt's Socket Mode handler, but an envelope whose payload is malformed is acknowledged
    (Slack would redeliver it for nothing) and logged instead of failing inside bolt."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        try:
            check_payload(req.payload)
        except MalformedPayload as exc:
            log.warning("Slack envelope %s refused and acknowledged: %s", req.envelope_id, exc)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await super().handle(client, req)


class SlackChannel(WebhookChannel):
    """The Slack app, over HTTP (``add_routes``) or Socket Mode (``start``/``stop``)."""

    name = "slack"

    def __init__(
        self,
        settings: SlackChannelSettings,
        intake: Intake,
        known_thread: KnownThread,
        revisions: Revisions,
        client: AsyncWebClient | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or web_client(settings)
        self.users = SlackUsers(self.client, settings.users_cache_ttl_seconds)
        files = SlackFiles(
            settings.bot_token, str(self.client.base_url), settings.lookup_timeout_seconds
        )
        self.listeners = SlackListeners(
            settings, intake, self.users, known_thread, revisions, files
        )
        self.identity = BotIdentity(self.client, settings.bot_token)
        self.app = build_app(settings, self.listeners, self.client, self.identity)
        self._verifier = (
            SignatureVerifier(settings.signing_secret) if settings.signing_secret else None
        )
        self._socket: AsyncSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self.bot_user_id: str | None = None

    def add_routes(self, app: web.Application) -> None:
        if self.settings.mode == "http":
            add_body_route(app, EVENTS_PATH, self.handle)

    async def start(self) -> None:
        if self.client.session is None:
            # One keep-alive session for every Web API call: no new TLS handshake per event.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            self.client.session = self._session
        if self.app.client.session is None:
            self.app.client.session = self.client.session  # bolt's per-request clients use it
        await self._who_am_i()
        if self.settings.mode == "socket":
            self._socket = CheckedSocketModeHandler(
                self.app, self.settings.app_token, web_client=self.client
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack Socket Mode connected")
        else:
            log.info("Slack events on POST %s", EVENTS_PATH)

    async def stop(self, grace_seconds: float) -> None:
        if self._socket is not None:
            try:
                await asyncio.wait_for(
                    self._socket.close_async(),  # type: ignore[no-untyped-call]
                    grace_seconds or None,
                )
            except (TimeoutError, OSError) as exc:
                log.warning("Slack Socket Mode did not close cleanly: %s", exc)
            self._socket = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _who_am_i(self) -> None:
        """``auth.test`` once: log which bot we are, and say loudly if the token is bad."""
        try:
            result = await self.identity.authorize()
        except SlackUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, SlackApiError) and isinstance(cause.response.data, dict):
                error = cause.response.data.get("error")
                log.error("Slack auth.test failed (%s): check SPOC_SLACK_BOT_TOKEN", error)
            else:
                log.error("Slack auth.test failed: %s (Slack unreachable?)", cause)
            return
        self.bot_user_id = result.bot_user_id
        log.info("Slack app is bot user %s in team %s", self.bot_user_id, result.team_id)

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: verify, hand to bolt, answer as bolt answers."""
        body = await request.read()
        headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in request.headers.items()}
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if self._verifier is None or not self._verifier.is_valid(body, timestamp, signature):
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            text = body.decode("utf-8")
            check_payload(parse_body(text, request.content_type))
            bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=headers)
        except MalformedPayload as exc:
            log.warning("Slack request refused: %s", exc)
            return web.json_response({"error": str(exc), "field": exc.field}, status=400)
        except (ValueError, TypeError, AttributeError):  # bad UTF-8 or JSON from a signer
            return web.json_response({"error": "not a Slack payload", "field": "body"}, status=400)
        if retry := request.headers.get("X-Slack-Retry-Num"):
            reason = request.headers.get("X-Slack-Retry-Reason", "?")
            log.info("Slack retry %s (%s)", retry, reason)
        response = await self.app.async_dispatch(bolt_request)
        content_type = response.headers.get("content-type", ["text/plain"])[0]
        return web.Response(
            status=response.status,
            body=response.body.encode("utf-8") if isinstance(response.body, str) else response.body,
            content_type=content_type.split(";")[0].strip(),
        )


__all__ = ["EVENTS_PATH", "SlackChannel", "SlackChannelSettings"]
