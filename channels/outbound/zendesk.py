"""Forward kind ``zendesk``: Zendesk Support tickets, and Zendesk's event webhooks back.

What it does
    The first event for a ticket creates one: ``POST /api/v2/tickets.json`` with ``ticket``
    ``{subject, comment: {body, public: true}, requester: {name, email}, priority,
    external_id: <our ref>}`` (priority ``P1`` urgent, ``P2`` high, ``P3`` normal, ``P4``
    low); ``ticket.id`` is kept. Later events update it: ``PUT /api/v2/tickets/{id}.json``
    with a ``comment`` (the requester's new message public; escalations and status changes
    private notes). The ids of the comments we wrote (the answer's ``audit.events`` of type
    ``Comment``) are remembered so their webhooks are not taken for an agent's answer.
    Before creating, the ticket may exist already -- an earlier attempt created it and died
    before its id was stored (Zendesk takes no idempotency key) -- so it is looked up by our
    ref first: ``GET /api/v2/tickets.json?external_id=SD-42`` (List Tickets; any agent may
    call it); the oldest ticket whose ``external_id`` is exactly the ref is kept instead, and
    its first comment -- the one spoc created it with -- is remembered as ours (``GET
    /api/v2/tickets/{id}/comments.json``), so its webhook is not relayed to the requester.

Config keys (``[[forward]]`` with ``kind = "zendesk"``)
    ``url`` (``https://acme.zendesk.com``), ``username`` (the agent's email), ``when``,
    ``allow_private_network``, ``timeout_seconds``; the API token from
    ``SPOC_FORWARD_<NAME>_TOKEN`` (basic auth ``{email}/token:{token}``), the webhook's
    signing secret from ``SPOC_FORWARD_<NAME>_WEBHOOK_SECRET``.

The way back (:meth:`ZendeskForwarder.read_hook`)
    ``X-Zendesk-Webhook-Signature`` = base64 HMAC-SHA256 (key: the secret's UTF-8 bytes) of
    ``X-Zendesk-Webhook-Signature-Timestamp`` + the raw body. Events:
    ``zen:event-type:ticket.comment_added`` (``event.comment.{id, body, is_public}``) and
    ``zen:event-type:ticket.status_changed`` to ``SOLVED``/``CLOSED`` (``event.current``);
    ``detail.id`` is the Zendesk ticket, ``detail.external_id`` our ref; the event's ``id``
    keys the delivery.

Outcomes
    2xx delivered; 408, 429 (``Retry-After``), 5xx, timeouts retried; 401/403 and other 4xx
    (422 ``RecordInvalid``) dead-lettered with Zendesk's ``error``/``description``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from channels.outbound import DeliveryError
from channels.outbound.forward import (
    Answer,
    ForwardJob,
    ForwardResult,
    ToolClient,
    ToolSettings,
    adopted,
    first_text,
    must_create,
    object_at,
    tagged,
    update_text,
)
from normalizer.hooks import HookEvent, HookMalformed, HookRefused
from normalizer.outbox_events import CONTACT_ADDED

PRIORITIES = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"}
COMMENT_ADDED = "zen:event-type:ticket.comment_added"
STATUS_CHANGED = "zen:event-type:ticket.status_changed"


def zendesk_error(answer: Answer) -> str:
    data = object_at(answer.json())
    parts = [str(data[k]) for k in ("error", "description") if isinstance(data.get(k), str)]
    if isinstance(data.get("error"), dict):
        parts += [str(v) for v in data["error"].values()]
    if data.get("details"):
        parts.append(json.dumps(data["details"])[:300])
    return "; ".join(parts)[:500]


def zendesk_signature(secret: str, timestamp: str, raw: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + raw, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class ZendeskForwarder:
    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings
        login = f"{settings.username}/token"  # API token auth: {email}/token:{token}
        self._api = ToolClient("Zendesk", settings, zendesk_error, login)
        self._what = self._api.what

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return object_at(await self._api.call(method, path, body))

    async def forward(self, job: ForwardJob) -> ForwardResult:
        if must_create(job, self._what):
            return await self._create(job)
        assert job.external_key is not None
        comment = {"body": update_text(job), "public": job.event == CONTACT_ADDED}
        answer = await self._call(
            "PUT", f"/api/v2/tickets/{job.external_key}.json", {"ticket": {"comment": comment}}
        )
        return ForwardResult(job.external_key, job.external_id, _own_comments(answer))

    async def _create(self, job: ForwardJob) -> ForwardResult:
        ticket = job.ticket
        ref = str(ticket.get("ref"))
        found = adopted(self._what, ref, await self._existing(ref))
        if found is not None:
            return found
        body: dict[str, Any] = {
            "subject": tagged(ref, str(ticket.get("subject") or "(no subject)"), 255),
            "comment": {"body": first_text(ticket), "public": True},
            "priority": PRIORITIES.get(str(ticket.get("priority")), "normal"),
            "external_id": ref,
        }
        requester = object_at(ticket.get("requester"))
        if requester.get("email"):
            body["requester"] = {
                "name": requester.get("name") or requester["email"],
                "email": requester["email"],
            }
        answer = await self._call("POST", "/api/v2/tickets.json", {"ticket": body})
        created = object_at(answer.get("ticket"))
        if not created.get("id"):
            raise DeliveryError(f"{self._what}: the answer has no ticket.id", permanent=False)
        key = str(created["id"])
        return ForwardResult(key, key, _own_comments(answer))

    async def _existing(self, ref: str) -> ForwardResult | None:
        """The ticket created for ``ref`` already (``external_id`` == ref), if any."""
        listed = await self._call("GET", f"/api/v2/tickets.json?{urlencode({'external_id': ref})}")
        tickets = listed.get("tickets")
        ids = sorted(
            int(t["id"])
            for t in (tickets if isinstance(tickets, list) else [])
            if isinstance(t, dict) and t.get("external_id") == ref and isinstance(t.get("id"), int)
        )
        if not ids:
            return None
        key = str(ids[0])
        listed = await self._call("GET", f"/api/v2/tickets/{key}/comments.json?sort_order=asc")
        comments = listed.get("comments")
        first = object_at(comments[0]) if isinstance(comments, list) and comments else {}
        return ForwardResult(key, key, (f"comment:{first['id']}",) if first.get("id") else ())

    # ---- the way back -----------------------------------------------------------------------
    async def read_hook(self, headers: Mapping[str, str], raw: bytes) -> list[HookEvent]:
        secret = self.settings.webhook_secret
        timestamp = headers.get("X-Zendesk-Webhook-Signature-Timestamp", "")
        given = headers.get("X-Zendesk-Webhook-Signature", "").strip()
        expected = zendesk_signature(secret, timestamp, raw) if secret else ""
        if not secret or not timestamp or not hmac.compare_digest(expected, given):
            raise HookRefused("X-Zendesk-Webhook-Signature does not match the webhook secret")
        try:
            data = object_at(json.loads(raw))
        except ValueError as exc:
            raise HookMalformed("the body is not JSON") from exc
        detail, event = object_at(data.get("detail")), object_at(data.get("event"))
        ticket_id = str(detail.get("id") or "")
        if not ticket_id:
            raise HookMalformed("detail.id is missing", field="detail.id")
        delivery = f"event:{data.get('id') or ''}"
        ref = detail.get("external_id") if isinstance(detail.get("external_id"), str) else None
        if data.get("type") == COMMENT_ADDED:
            comment = object_at(event.get("comment"))
            author = object_at(comment.get("author"))
            return [
                HookEvent(
                    delivery_key=delivery,
                    type="comment.public" if comment.get("is_public") else "comment.internal",
                    text=str(comment.get("body") or ""),
                    author=str(author.get("name") or ""),
                    external_key=ticket_id,
                    ref=ref,
                    also_seen=(f"comment:{comment.get('id')}",) if comment.get("id") else (),
                )
            ]
        if data.get("type") == STATUS_CHANGED and str(event.get("current")).upper() in (
            "SOLVED",
            "CLOSED",
        ):
            return [
                HookEvent(
                    delivery_key=delivery, type="ticket.resolved", external_key=ticket_id, ref=ref
                )
            ]
        return []


def _own_comments(answer: Mapping[str, Any]) -> tuple[str, ...]:
    events = object_at(answer.get("audit")).get("events")
    return tuple(
        f"comment:{e['id']}"
        for e in (events if isinstance(events, list) else [])
        if isinstance(e, dict) and e.get("type") == "Comment" and e.get("id")
    )
