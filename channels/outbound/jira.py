"""Forward kind ``jira``: Jira Service Management Cloud requests, and their webhooks back.

What it does
    The first event for a ticket (``ticket.created``, or ``ticket.escalated`` into the
    target's filter) raises a request: the requester's Jira customer is found or created
    (``POST /rest/servicedeskapi/customer`` with ``email``/``displayName``; when it exists
    already, ``GET /rest/api/3/user/search?query=<email>``), then ``POST
    /rest/servicedeskapi/request`` with ``serviceDeskId``, ``requestTypeId``,
    ``requestFieldValues.summary/description`` and ``raiseOnBehalfOf`` (the accountId).
    ``issueKey`` and ``issueId`` are kept. Later events become comments on that request
    (``POST /rest/servicedeskapi/request/{key}/comment``): a contact from the requester
    ``public: true``, a status change or escalation ``public: false``; the comment's id is
    remembered so its webhook coming back is not taken for an agent's answer. An event
    before the request exists waits (temporary failure) until the request is created.

Config keys (``[[forward]]`` with ``kind = "jira"``)
    ``url`` (``https://acme.atlassian.net``), ``username`` (the integration user's email),
    ``service_desk_id``, ``request_type_id``, ``when``, ``allow_private_network``,
    ``timeout_seconds``; the API token from ``SPOC_FORWARD_<NAME>_TOKEN`` (basic auth), the
    admin webhook's secret from ``SPOC_FORWARD_<NAME>_WEBHOOK_SECRET``.

The way back (:meth:`JiraForwarder.read_hook`)
    Jira admin webhooks sign the raw body: ``X-Hub-Signature: sha256=<hex HMAC-SHA256>``.
    ``comment_created`` is re-read through ``GET
    /rest/servicedeskapi/request/{key}/comment/{id}`` to learn whether it is public;
    ``jira:issue_updated`` with a ``resolution`` set, or a ``status`` moved to a done status
    (``Resolved``, ``Done``, ``Closed``), resolves the ticket. Deliveries are keyed by
    ``X-Atlassian-Webhook-Identifier``.

Outcomes
    2xx delivered; 408, 429 (``Retry-After``), 5xx, timeouts retried; 401/403 and other 4xx
    dead-lettered with Jira's ``errorMessage``/``errorMessages``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from channels.outbound import DeliveryError
from channels.outbound.forward import (
    Answer,
    ForwardJob,
    ForwardResult,
    GuardedHTTP,
    basic_auth,
    check_answer,
)
from normalizer.hooks import HookEvent, HookMalformed, HookRefused

DONE_STATUSES = frozenset({"resolved", "done", "closed"})


@dataclass(frozen=True, slots=True)
class JiraSettings:
    name: str
    url: str
    username: str
    token: str = field(repr=False)
    service_desk_id: str
    request_type_id: str
    webhook_secret: str | None = field(default=None, repr=False)
    allow_private_network: bool = False
    timeout_seconds: float = 30.0


def jira_error(answer: Answer) -> str:
    """Jira's own words: servicedeskapi's ``errorMessage``, the platform's ``errorMessages``
    and ``errors``."""
    data = answer.json()
    if not isinstance(data, dict):
        return ""
    parts = [str(data["errorMessage"])] if data.get("errorMessage") else []
    parts += [str(m) for m in data.get("errorMessages") or [] if m]
    errors = data.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(parts)[:500]


class JiraForwarder:
    def __init__(self, settings: JiraSettings) -> None:
        self.settings = settings
        self._http = GuardedHTTP(
            settings.allow_private_network,
            settings.timeout_seconds,
            basic_auth(settings.username, settings.token),
        )
        self._base = settings.url.rstrip("/")
        self._what = f"Jira {settings.name}"

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self._http.request(
            method,
            self._base + path,
            json_body=body,
            headers={"Accept": "application/json"},
            what=self._what,
        )
        check_answer(answer, f"{self._what} ({method} {path.split('?')[0]})", jira_error(answer))
        return answer.json()

    async def forward(self, job: ForwardJob) -> ForwardResult:
        if job.external_key is None:
            if job.event not in ("ticket.created", "ticket.escalated"):
                raise DeliveryError(
                    f"{self._what}: waiting for the request for {job.ticket.get('ref')} "
                    "to be created first",
                    permanent=False,
                )
            return await self._create(job)
        public = job.event == "contact.added"
        comment = await self._call(
            "POST",
            f"/rest/servicedeskapi/request/{quote(job.external_key)}/comment",
            {"body": _comment_text(job), "public": public},
        )
        comment_id = str(comment.get("id", "")) if isinstance(comment, dict) else ""
        own = (f"comment:{comment_id}",) if comment_id else ()
        return ForwardResult(job.external_key, job.external_id, own)

    async def _create(self, job: ForwardJob) -> ForwardResult:
        ticket = job.ticket
        body: dict[str, Any] = {
            "serviceDeskId": self.settings.service_desk_id,
            "requestTypeId": self.settings.request_type_id,
            "requestFieldValues": {
                "summary": f"[{ticket.get('ref')}] {ticket.get('subject') or '(no subject)'}"[:255],
                "description": _description(ticket),
            },
        }
        requester = ticket.get("requester") or {}
        if requester.get("email"):
            body["raiseOnBehalfOf"] = await self._customer(
                str(requester["email"]), str(requester.get("name") or requester["email"])
            )
        created = await self._call("POST", "/rest/servicedeskapi/request", body)
        if not isinstance(created, dict) or not created.get("issueKey"):
            raise DeliveryError(f"{self._what}: the answer has no issueKey", permanent=False)
        return ForwardResult(str(created["issueKey"]), str(created.get("issueId") or "") or None)

    async def _customer(self, email: str, name: str) -> str:
        """The accountId of the customer with ``email``, created when Jira has none."""
        answer = await self._http.request(
            "POST",
            self._base + "/rest/servicedeskapi/customer",
            json_body={"email": email, "displayName": name},
            headers={"Accept": "application/json"},
            what=self._what,
        )
        data = answer.json()
        if 200 <= answer.status < 300 and isinstance(data, dict) and data.get("accountId"):
            return str(data["accountId"])
        if answer.status not in (400, 409):  # 400/409: the customer exists already
            check_answer(
                answer, f"{self._what} (POST /rest/servicedeskapi/customer)", jira_error(answer)
            )
        users = await self._call("GET", f"/rest/api/3/user/search?query={quote(email)}")
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and user.get("accountId"):
                return str(user["accountId"])
        raise DeliveryError(
            f"{self._what}: no customer for the requester and none could be created",
            permanent=True,
        )

    # ---- the way back -----------------------------------------------------------------------
    async def read_hook(self, headers: Mapping[str, str], raw: bytes) -> list[HookEvent]:
        secret = self.settings.webhook_secret
        signature = headers.get("X-Hub-Signature", "")
        if not secret or not _signed(secret, raw, signature):
            raise HookRefused("X-Hub-Signature does not match the webhook secret")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise HookMalformed("the body is not JSON") from exc
        if not isinstance(data, dict):
            raise HookMalformed("the body is not a JSON object")
        delivery = headers.get("X-Atlassian-Webhook-Identifier", "")
        issue = _object(data.get("issue"))
        key = str(issue.get("key") or "")
        if not key:
            raise HookMalformed("issue.key is missing", field="issue.key")
        event = data.get("webhookEvent")
        if event == "comment_created":
            return await self._comment(data, key, delivery)
        if event == "jira:issue_updated" and _resolved(data.get("changelog")):
            who = _object(data.get("user"))
            return [
                HookEvent(
                    delivery_key=f"delivery:{delivery}" if delivery else f"resolved:{key}",
                    type="ticket.resolved",
                    author=str(who.get("displayName") or ""),
                    external_key=key,
                )
            ]
        return []

    async def _comment(self, data: dict[str, Any], key: str, delivery: str) -> list[HookEvent]:
        comment = _object(data.get("comment"))
        comment_id = str(comment.get("id") or "")
        if not comment_id.isdigit():
            raise HookMalformed("comment.id is missing", field="comment.id")
        # Whether it is public is servicedeskapi's to say, not the platform webhook's.
        stored = await self._call(
            "GET", f"/rest/servicedeskapi/request/{quote(key)}/comment/{comment_id}"
        )
        stored = _object(stored)
        author = _object(stored.get("author"))
        return [
            HookEvent(
                delivery_key=f"delivery:{delivery}" if delivery else f"comment:{comment_id}",
                type="comment.public" if stored.get("public") is True else "comment.internal",
                text=str(stored.get("body") or comment.get("body") or ""),
                author=str(author.get("displayName") or ""),
                external_key=key,
                also_seen=(f"comment:{comment_id}",),
            )
        ]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def jira_signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _signed(secret: str, raw: bytes, header: str) -> bool:
    return hmac.compare_digest(jira_signature(secret, raw).encode(), header.strip().encode())


def _resolved(changelog: Any) -> bool:
    items = changelog.get("items") if isinstance(changelog, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("field") or "").casefold()
        to = str(item.get("toString") or "").casefold()
        if (name == "resolution" and to) or (name == "status" and to in DONE_STATUSES):
            return True
    return False


def _description(ticket: Mapping[str, Any]) -> str:
    contacts = ticket.get("contacts") or []
    first = next((c for c in contacts if c.get("direction") == "in"), None)
    text = str(first.get("text") or "") if first else ""
    return (
        f"{text}\n\n----\nspoc {ticket.get('ref')} · {ticket.get('channel')} · "
        f"{ticket.get('priority')} · {ticket.get('category') or 'uncategorised'}"
    )[:32000]


def _comment_text(job: ForwardJob) -> str:
    ref = job.ticket.get("ref")
    if job.event == "contact.added" and job.contact is not None:
        return str(job.contact.get("text") or "")[:32000]
    if job.event == "ticket.escalated":
        return f"spoc: {ref} escalated to {job.ticket.get('group')}"
    return f"spoc: {ref} is {job.ticket.get('status')}"
