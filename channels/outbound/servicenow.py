"""Forward kind ``servicenow``: ServiceNow incidents through the Table API, and a business
rule's Standard-Webhooks-signed answers back.

What it does
    The first event for a ticket creates an incident: the caller is looked up
    (``GET /api/now/table/sys_user?sysparm_query=email=<email>``), then ``POST
    /api/now/table/incident`` with ``short_description``, ``description``, ``caller_id`` (the
    user's ``sys_id``, when found), ``urgency``/``impact`` from our priority (P1 1/1, P2 1/2,
    P3 2/2, P4 2/3: ServiceNow's default matrix gives priorities 1-4) and ``correlation_id`` =
    our ref; ``result.number`` (shown) and ``result.sys_id`` are kept. Before creating, the
    incident may exist already -- an earlier attempt created it and died before its sys_id was
    stored (the Table API takes no idempotency key) -- so it is looked up first: ``GET
    /api/now/table/incident?sysparm_query=correlation_id=SD-42^ORDERBYsys_created_on`` with
    ``sysparm_fields=sys_id,number,correlation_id`` and ``sysparm_limit=1`` (needs read access
    to ``incident``, e.g. the ``itil`` role); the incident found is kept. Later events: ``PATCH
    /api/now/table/incident/{sys_id}`` with ``comments`` (customer-visible: the requester's
    new message) or ``work_notes`` (internal: escalations and status changes).

Config keys (``[[forward]]`` with ``kind = "servicenow"``)
    ``url`` (``https://acme.service-now.com``), ``username``, ``when``,
    ``allow_private_network``, ``timeout_seconds``; the password from
    ``SPOC_FORWARD_<NAME>_PASSWORD`` (basic auth), the business rule's signing secret from
    ``SPOC_FORWARD_<NAME>_WEBHOOK_SECRET``.

The way back
    A business rule (docs/forwarding.md has the script) POSTs ``{"type", "ref", "text",
    "author"}`` signed per Standard Webhooks to ``/hooks/<name>``.

Outcomes
    2xx delivered; 408, 429 (``Retry-After``), 5xx, timeouts retried; 401/403 and other 4xx
    dead-lettered with ServiceNow's ``error.message``/``error.detail``.
"""

from __future__ import annotations

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
    read_standard_hook,
    tagged,
    update_text,
)
from normalizer.hooks import HookEvent
from normalizer.outbox_events import CONTACT_ADDED

URGENCY_IMPACT = {"P1": ("1", "1"), "P2": ("1", "2"), "P3": ("2", "2"), "P4": ("2", "3")}


def servicenow_error(answer: Answer) -> str:
    error = object_at(object_at(answer.json()).get("error"))
    parts = [str(error[k]) for k in ("message", "detail") if error.get(k)]
    return "; ".join(parts)[:500]


class ServiceNowForwarder:
    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings
        self._api = ToolClient("ServiceNow", settings, servicenow_error)
        self._what = self._api.what

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        return object_at(await self._api.call(method, path, body)).get("result")

    async def forward(self, job: ForwardJob) -> ForwardResult:
        if must_create(job, self._what):
            return await self._create(job)
        assert job.external_id is not None
        note = "comments" if job.event == CONTACT_ADDED else "work_notes"
        await self._call(
            "PATCH",
            f"/api/now/table/incident/{quote(job.external_id)}",
            {note: update_text(job)},
        )
        return ForwardResult(job.external_key, job.external_id)

    async def _create(self, job: ForwardJob) -> ForwardResult:
        ticket = job.ticket
        ref = str(ticket.get("ref"))
        found = adopted(self._what, ref, await self._existing(ref))
        if found is not None:
            return found
        urgency, impact = URGENCY_IMPACT.get(str(ticket.get("priority")), ("2", "2"))
        body: dict[str, Any] = {
            "short_description": tagged(ref, str(ticket.get("subject") or ""), 160),
            "description": first_text(ticket),
            "urgency": urgency,
            "impact": impact,
            "correlation_id": ticket.get("ref"),
            "correlation_display": "spoc",
        }
        email = object_at(ticket.get("requester")).get("email")
        if email:
            caller = await self._caller(str(email))
            if caller:
                body["caller_id"] = caller
        created = object_at(await self._call("POST", "/api/now/table/incident", body))
        if not created.get("sys_id"):
            raise DeliveryError(f"{self._what}: the answer has no result.sys_id", permanent=False)
        return ForwardResult(
            str(created.get("number") or created["sys_id"]), str(created["sys_id"])
        )

    async def _existing(self, ref: str) -> ForwardResult | None:
        """The incident created for ``ref`` already (``correlation_id`` == ref), if any."""
        if "^" in ref:  # never widen the encoded query (refs are letters, digits and a hyphen)
            return None
        query = urlencode(
            {
                "sysparm_query": f"correlation_id={ref}^ORDERBYsys_created_on",
                "sysparm_fields": "sys_id,number,correlation_id",
                "sysparm_limit": "1",
            }
        )
        for found in _records(await self._call("GET", f"/api/now/table/incident?{query}")):
            if found.get("sys_id") and found.get("correlation_id") == ref:
                sys_id = str(found["sys_id"])
                return ForwardResult(str(found.get("number") or sys_id), sys_id)
        return None

    async def _caller(self, email: str) -> str | None:
        if "^" in email:  # an encoded-query operator: never let an address widen the query
            return None
        query = urlencode(
            {"sysparm_query": f"email={email}", "sysparm_fields": "sys_id", "sysparm_limit": "1"}
        )
        for user in _records(await self._call("GET", f"/api/now/table/sys_user?{query}")):
            if user.get("sys_id"):
                return str(user["sys_id"])
        return None

    async def read_hook(self, headers: Mapping[str, str], raw: bytes) -> list[HookEvent]:
        return read_standard_hook(self.settings.webhook_secret, headers, raw)


def _records(result: Any) -> list[dict[str, Any]]:
    """A Table API list's ``result`` records (objects only)."""
    return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []
