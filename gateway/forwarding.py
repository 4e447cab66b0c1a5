"""Forwarding wired together: the ``forward`` outbox transport and the connectors behind it.

:class:`ForwardSender` is the dispatcher's sender for every ``forward.<kind>`` row: it reads
the ticket as it is now (after the commit that queued the row), hands the connector of the
row's target a :class:`~channels.outbound.forward.ForwardJob`, and keeps the key the tool
answered with in the ticket's ``forwards`` record (``router.forwards``). :func:`forwarders`
builds one connector per ``[[forward]]`` whose secrets are set; a target missing its secret
is logged and left out (its rows dead-letter as "not running", never sent unsigned).

Ownership: the connectors hold nothing open of their own. The HTTP ones open a session per
request and close it; email targets send through the relay sender the caller passes in (the
gateway's one ``[outbound_smtp]`` sender, whose kept sessions the dispatcher closes on
shutdown), so :func:`forwarders` builds nothing that needs closing.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Mapping
from typing import Any

from channels.outbound import DeliveryError
from channels.outbound.email import EmailSender
from channels.outbound.email_forward import EmailForwarder, EmailForwardSettings
from channels.outbound.forward import ForwardJob, ToolSettings
from channels.outbound.jira import JiraForwarder
from channels.outbound.servicenow import ServiceNowForwarder
from channels.outbound.webhook import WebhookForwarder, WebhookSettings
from channels.outbound.zendesk import ZendeskForwarder
from gateway.config import Config
from gateway.config.secrets import env_name
from gateway.config.sections import ForwardEntry
from gateway.hooks import Target
from router.forwards import ForwardRecord, ForwardRecords
from router.tickets import TicketNotFound, TicketService

log = logging.getLogger(__name__)


class ForwardSender:
    def __init__(
        self, targets: Mapping[str, Target], records: ForwardRecords, tickets: TicketService
    ) -> None:
        self._targets = dict(targets)
        self._records = records
        self._tickets = tickets

    async def send(self, payload: Mapping[str, Any], *, idempotency_key: str) -> None:
        name, ticket_id = payload.get("target"), payload.get("ticket_id")
        if not isinstance(name, str) or not isinstance(ticket_id, int):
            raise DeliveryError("forward payload needs `target` and `ticket_id`", permanent=True)
        target = self._targets.get(name)
        if target is None:
            raise DeliveryError(f"forward target {name!r} is not running", permanent=True)
        try:
            ticket = await self._tickets.get(self._tickets.ref(ticket_id))
        except TicketNotFound as exc:
            raise DeliveryError(f"ticket {ticket_id} does not exist", permanent=True) from exc
        contact_id = payload.get("contact_id")
        contact = next((c for c in ticket["contacts"] if c["id"] == contact_id), None)
        record = await self._records.get(ticket_id, name)
        original = None
        if getattr(target, "needs_original", False) and isinstance(contact_id, int):
            original = await self._records.original(contact_id)
        job = ForwardJob(
            event=str(payload.get("event", "")),
            ticket=ticket,
            contact=contact,
            external_key=record.external_key,
            external_id=record.external_id,
            idempotency_key=idempotency_key,
            original=original,
        )
        try:
            result = await target.forward(job)
        except DeliveryError as exc:
            await self._records.failed(ticket_id, name, str(exc))
            raise
        kept = ForwardRecord(result.external_key, result.external_id)
        await self._records.delivered(ticket_id, name, kept, result.own_ids)


def forwarders(config: Config, relay: EmailSender) -> dict[str, Target]:
    """One connector per ``[[forward]]`` target that can run, by name. Email targets send
    through ``relay`` (and its open sessions), which stays the caller's to close."""
    built: dict[str, Target] = {}
    for entry in config.forward:
        try:
            target = _forwarder(config, entry, relay)
        except (ValueError, binascii.Error) as exc:
            log.error("[[forward]] %s cannot start: %s", entry.name, exc)
            continue
        if target is not None:
            built[entry.name] = target
    return built


def _required(entry: ForwardEntry, value: str | None, suffix: str) -> str | None:
    if not value:
        log.error(
            "[[forward]] %s: SPOC_FORWARD_%s_%s is not set; the target stays off",
            entry.name,
            env_name(entry.name),
            suffix,
        )
    return value


_TOOLS: dict[str, tuple[type[JiraForwarder | ZendeskForwarder | ServiceNowForwarder], str]] = {
    "jira": (JiraForwarder, "TOKEN"),
    "zendesk": (ZendeskForwarder, "TOKEN"),
    "servicenow": (ServiceNowForwarder, "PASSWORD"),
}


def _forwarder(config: Config, entry: ForwardEntry, relay: EmailSender) -> Target | None:
    secrets, name = config.secrets, entry.name
    hook_secret = secrets.forward_webhook_secret(name)
    if entry.kind == "webhook":
        secret = _required(entry, secrets.forward_secret(name), "SECRET")
        if secret is None:
            return None  # nothing is sent unsigned
        return WebhookForwarder(
            WebhookSettings(
                name=name,
                url=entry.url or "",
                secret=secret,
                hook_secret=hook_secret or secret,
                allow_private_network=entry.allow_private_network,
                timeout_seconds=entry.timeout_seconds,
            )
        )
    if entry.kind == "email":
        assert entry.to is not None
        email = config.email
        return EmailForwarder(
            EmailForwardSettings(
                name=name,
                to=entry.to,
                desk_address=email.address,
                from_name=email.from_name,
                message_id_domain=email.id_domain,
            ),
            relay,
        )
    if entry.kind not in _TOOLS:
        log.error("[[forward]] %s: kind %s is not built in this version", name, entry.kind)
        return None
    forwarder, suffix = _TOOLS[entry.kind]
    held = secrets.forward_passwords if suffix == "PASSWORD" else secrets.forward_tokens
    secret = _required(entry, held.get(name), suffix)
    if secret is None:
        return None
    return forwarder(
        ToolSettings(
            name=name,
            url=entry.url or "",
            username=entry.username or "",
            secret=secret,
            webhook_secret=hook_secret,
            allow_private_network=entry.allow_private_network,
            timeout_seconds=entry.timeout_seconds,
            service_desk_id=entry.service_desk_id or "",
            request_type_id=entry.request_type_id or "",
        )
    )
