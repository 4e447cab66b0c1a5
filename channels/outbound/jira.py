"""Forward kind ``jira``: Jira Service Management Cloud requests, and their webhooks back.

What it does
    The first event for a ticket (``ticket.created``, or ``ticket.escalated`` into the
    target's filter) raises a request: the requester's Jira customer is found or created
    (``POST /rest/servicedeskapi/customer`` with ``email``/``displayName``; when it exists
    already or spoc may not create it, ``GET /rest/api/3/user/search?query=<email>``; none
    found: the integration user raises it), then ``POST
    /rest/servicedeskapi/request`` with ``serviceDeskId``, ``requestTypeId``,
    ``requestFieldValues.summary/description`` and ``raiseOnBehalfOf`` (the accountId).
    ``issueKey`` and ``issueId`` are kept. Before raising it, the request may exist already
    -- an earlier attempt raised it and died before its key was stored (Jira takes no
    idempotency key) -- so it is looked up first: ``GET /rest/api/3/search/jql`` with
    ``jql=summary ~ "\\"SD-42\\"" ORDER BY created ASC`` and ``fields=summary``; the oldest
    issue whose summary starts with ``[SD-42]`` is kept instead of raising another (needs
    *Browse projects* on the service project, which its agents have). Later events become
    comments on that request (``POST /rest/servicedeskapi/request/{key}/comment``): a
    contact from the requester ``public: true``, a status change or escalation ``public:
    false``; the comment's id is remembered so its webhook coming back is not taken for an
    agent's answer. An event before the request exists waits (temporary failure) until the
    request is created.

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
from typing import Any
from urllib.parse import quote, urlencode

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

DONE_STATUSES = frozenset({"resolved", "done", "closed"})


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
    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings
        self._api = ToolClient("Jira", settings, jira_error)
        self._what = self._api.what
        self._call = self._api.call

    async def forward(self, job: ForwardJob) -> ForwardResult:
        if must_create(job, self._what):
            return await self._create(job)
        assert job.external_key is not None
        public = job.event == CONTACT_ADDED
        comment = await self._call(
            "POST",
            f"/rest/servicedeskapi/request/{quote(job.external_key)}/comment",
            {"body": update_text(job), "public": public},
        )
        comment_id = str(comment.get("id", "")) if isinstance(comment, dict) else ""
        own = (f"comment:{comment_id}",) if comment_id else ()
        return ForwardResult(job.external_key, job.external_id, own)

    async def _create(self, job: ForwardJob) -> ForwardResult:
        ticket = job.ticket
        ref = str(ticket.get("ref"))
        found = adopted(self._what, ref, await self._existing(ref))
        if found is not None:
            return found
        body: dict[str, Any] = {
            "serviceDeskId": self.settings.service_desk_id,
            "requestTypeId": self.settings.request_type_id,
            "requestFieldValues": {
                "summary": tagged(ref, str(ticket.get("subject") or "(no subject)"), 255),
                "description": first_text(ticket),
            },
        }
        requester = ticket.get("requester") or {}
        email = requester.get("email")
        account = (
            await self._customer(str(email), str(requester.get("name") or email)) if email else None
        )
        if account is not None:
            body["raiseOnBehalfOf"] = account
        created = await self._call("POST", "/rest/servicedeskapi/request", body)
        if not isinstance(created, dict) or not created.get("issueKey"):
            raise DeliveryError(f"{self._what}: the answer has no issueKey", permanent=False)
        return ForwardResult(str(created["issueKey"]), str(created.get("issueId") or "") or None)

    async def _existing(self, ref: str) -> ForwardResult | None:
        """The request raised for ``ref`` already (its summary starts ``[ref]``), if any. The
        text search only narrows: the summary is checked exactly here."""
        query = urlencode(
            {
                "jql": f'summary ~ "\\"{ref}\\"" ORDER BY created ASC',
                "fields": "summary",
                "maxResults": "20",
            }
        )
        found = object_at(await self._call("GET", f"/rest/api/3/search/jql?{query}"))
        issues = found.get("issues")
        for issue in issues if isinstance(issues, list) else []:
            issue = object_at(issue)
            summary = str(object_at(issue.get("fields")).get("summary") or "")
            if issue.get("key") and summary.startswith(f"[{ref}]"):
                return ForwardResult(str(issue["key"]), str(issue.get("id") or "") or None)
        return None

    async def _customer(self, email: str, name: str) -> str | None:
        """The accountId of the customer with ``email``, created when Jira has none; None when
        Jira neither creates nor shows one (no admin right, hidden emails): the request is
        then raised by the integration user."""
        path = "/rest/servicedeskapi/customer"
        answer = await self._api.send("POST", path, {"email": email, "displayName": name})
        data = answer.json()
        if 200 <= answer.status < 300 and isinstance(data, dict) and data.get("accountId"):
            return str(data["accountId"])
        if answer.status not in (400, 403, 409):  # exists already, or no right to create
            self._api.check(answer, "POST", path)
        users = await self._call("GET", f"/rest/api/3/user/search?query={quote(email)}")
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and user.get("accountId"):
                return str(user["accountId"])
        return None

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
        issue = object_at(data.get("issue"))
        key = str(issue.get("key") or "")
        if not key:
            raise HookMalformed("issue.key is missing", field="issue.key")
        event = data.get("webhookEvent")
        if event == "comment_created":
            return await self._comment(data, key, delivery)
        if event == "jira:issue_updated" and _resolved(data.get("changelog")):
            who = object_at(data.get("user"))
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
        comment = object_at(data.get("comment"))
        comment_id = str(comment.get("id") or "")
        if not comment_id.isdigit():
            raise HookMalformed("comment.id is missing", field="comment.id")
        # Whether it is public is servicedeskapi's to say, not the platform webhook's.
        stored = await self._call(
            "GET", f"/rest/servicedeskapi/request/{quote(key)}/comment/{comment_id}"
        )
        stored = object_at(stored)
        author = object_at(stored.get("author"))
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
