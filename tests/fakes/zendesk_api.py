"""Zendesk Support, played locally: the Tickets API as spoc calls it and the event webhooks
Zendesk sends, from Zendesk's documented shapes.

``POST /api/v2/tickets.json`` ``{"ticket": {subject, comment: {body, public}, requester:
{name, email}, priority, external_id}}`` -> 201 ``{"ticket": {...id...}, "audit": {"events":
[{"id", "type": "Comment", ...}]}}``; no comment body -> 422 ``RecordInvalid``. ``PUT
/api/v2/tickets/{id}.json`` ``{"ticket": {"comment": {...}}}`` -> 200, same shape; unknown id
-> 404 ``RecordNotFound``. ``GET /api/v2/tickets.json?external_id=<id>`` (List Tickets) ->
200 ``{"tickets": [...], "next_page": null, "previous_page": null, "count": n}``, the tickets
with that ``external_id``, lowest id first. ``GET /api/v2/tickets/{id}/comments.json`` ->
``{"comments": [{"id", "type", "body", "public", "author_id"}], "next_page": null,
"previous_page": null, "count": n}``, oldest first. Basic auth ``{email}/token:{token}``; else 401
``{"error": "Couldn't authenticate you"}``. :meth:`FakeZendesk.agent_comment` /
:meth:`solve` give the ``zen:event-type:…`` webhook bodies; :meth:`deliver` signs them as
Zendesk does (``X-Zendesk-Webhook-Signature`` = base64 HMAC-SHA256 of timestamp + body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.saas_base import FakeSaaS

EMAIL = "spoc@example.com"
TOKEN = "zendesk-test-api-token"
WEBHOOK_SECRET = "zendesk-test-signing-secret"

_ERRORS = {
    401: {"error": "Couldn't authenticate you"},
    403: {"error": "Forbidden", "description": "You do not have access to this page"},
    404: {"error": "RecordNotFound", "description": "Not found"},
    429: {"error": "TooManyRequests", "description": "Rate limit exceeded"},
}


@dataclass
class FakeZendesk(FakeSaaS):
    username: str = f"{EMAIL}/token"
    password: str = TOKEN
    webhook_secret: str = WEBHOOK_SECRET
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(35436))

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v2/tickets.json", self._create)
        app.router.add_get("/api/v2/tickets.json", self._list)
        app.router.add_put("/api/v2/tickets/{id}.json", self._update)
        app.router.add_get("/api/v2/tickets/{id}/comments.json", self._comments)

    def refused(self, status: int) -> web.Response:
        body = _ERRORS.get(status, {"error": "ServerError", "description": "scripted"})
        return web.json_response(body, status=status)

    def _comment(self, ticket_id: str, comment: dict[str, Any], author: str) -> dict[str, Any]:
        stored = {
            "id": next(self._ids) * 10,
            "type": "Comment",
            "body": comment["body"],
            "public": comment.get("public", True),
            "author": author,
        }
        self.comments[ticket_id].append(stored)
        return stored

    async def _create(self, request: web.Request) -> web.Response:
        ticket = (await request.json()).get("ticket") or {}
        comment = ticket.get("comment") or {}
        if not comment.get("body"):
            return web.json_response(
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": {"base": [{"description": "Description: cannot be blank"}]},
                },
                status=422,
            )
        ticket_id = str(next(self._ids))
        stored = {**ticket, "id": int(ticket_id), "status": "new"}
        self.tickets[ticket_id], self.comments[ticket_id] = stored, []
        event = self._comment(ticket_id, comment, "spoc")
        await self.after_create()
        return web.json_response(
            {"ticket": stored, "audit": {"id": next(self._ids), "events": [event]}}, status=201
        )

    async def _list(self, request: web.Request) -> web.Response:
        wanted = request.query.get("external_id")
        found = [
            t for t in self.tickets.values() if wanted is None or t.get("external_id") == wanted
        ]
        found.sort(key=lambda t: int(t["id"]))
        body = {"tickets": found, "next_page": None, "previous_page": None, "count": len(found)}
        return web.json_response(body)

    async def _comments(self, request: web.Request) -> web.Response:
        ticket_id = request.match_info["id"]
        if ticket_id not in self.tickets:
            return self.refused(404)
        listed = [
            {
                "id": c["id"],
                "type": "Comment",
                "body": c["body"],
                "public": c["public"],
                "author_id": 900 if c["author"] != "spoc" else 1,
            }
            for c in self.comments[ticket_id]
        ]
        if request.query.get("sort_order") == "desc":
            listed.reverse()
        body = {"comments": listed, "next_page": None, "previous_page": None, "count": len(listed)}
        return web.json_response(body)

    async def _update(self, request: web.Request) -> web.Response:
        ticket_id = request.match_info["id"]
        if ticket_id not in self.tickets:
            return self.refused(404)
        change = (await request.json()).get("ticket") or {}
        events = (
            [self._comment(ticket_id, change["comment"], "spoc")] if "comment" in change else []
        )
        return web.json_response(
            {"ticket": self.tickets[ticket_id], "audit": {"id": next(self._ids), "events": events}}
        )

    # ---- the agent's side -------------------------------------------------------------
    def _event(self, ticket_id: str, type_: str, event: dict[str, Any]) -> dict[str, Any]:
        ticket = self.tickets[ticket_id]
        return {
            "account_id": 22129848,
            "detail": {
                "id": ticket_id,
                "external_id": ticket.get("external_id"),
                "status": ticket["status"].upper(),
                "subject": ticket.get("subject"),
            },
            "event": event,
            "id": str(uuid.uuid4()),
            "subject": f"zen:ticket:{ticket_id}",
            "time": "2026-12-01T10:05:00.000Z",
            "type": type_,
            "zendesk_event_version": "2022-11-06",
        }

    def agent_comment(self, ticket_id: str, body: str, *, public: bool) -> dict[str, Any]:
        stored = self._comment(ticket_id, {"body": body, "public": public}, "Agent Cy")
        return self.comment_webhook(ticket_id, stored)

    def comment_webhook(self, ticket_id: str, stored: dict[str, Any]) -> dict[str, Any]:
        comment = {
            "id": str(stored["id"]),
            "body": stored["body"],
            "is_public": stored["public"],
            "author": {"id": "900", "name": stored["author"], "is_staff": True},
        }
        return self._event(ticket_id, "zen:event-type:ticket.comment_added", {"comment": comment})

    def solve(self, ticket_id: str) -> dict[str, Any]:
        self.tickets[ticket_id]["status"] = "solved"
        return self._event(
            ticket_id,
            "zen:event-type:ticket.status_changed",
            {"current": "SOLVED", "previous": "OPEN"},
        )

    async def deliver(
        self, url: str, payload: dict[str, Any], *, secret: str | None = None
    ) -> tuple[int, Any]:
        raw = json.dumps(payload).encode()
        timestamp = "2026-12-01T10:05:01Z"
        mac = hmac.new(
            (secret or self.webhook_secret).encode(), timestamp.encode() + raw, hashlib.sha256
        )
        headers = {
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": base64.b64encode(mac.digest()).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "X-Zendesk-Webhook-Id": "01GHZ0JXGCDNM2G2RVBDPJXPY3",
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=raw, headers=headers) as response,
        ):
            return response.status, await response.json()
