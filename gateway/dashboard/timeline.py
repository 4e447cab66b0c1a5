"""A ticket's whole cross-channel story, oldest first: contacts in and out, every event, every
delivery from the outbox -- and for each contact *why* it joined this ticket.

Pure: built from the ticket JSON (``TicketService.get``) and the ticket's outbox rows
(``router.stats``), and the HTML of its mails sanitised; the templates only lay it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gateway.dashboard.mailview import sanitized_html
from router.stats import Delivery

THREAD_REASONS: Mapping[str, str] = {
    "new": "opened this ticket: it continued no earlier conversation",
    "new-stranger-refused": (
        "opened this ticket: it referred to another ticket, but the sender is no participant there"
    ),
    "message-id": "a reply to a message of this ticket (In-Reply-To / References)",
    "chat-thread": "in the same Slack thread or SMS conversation",
    "call": "part of the same phone call",
    "subject-tag": "carried this ticket's [ref] in its subject, from a participant",
    "message-id-closed-ticket": "replied to a ticket closed too long ago: opened this new one",
    "chat-thread-closed-ticket": "continued a chat of a ticket closed too long ago: a new one",
    "call-closed-ticket": "continued a call of a ticket closed too long ago: a new one",
    "subject-tag-closed-ticket": "tagged a ticket closed too long ago: opened this new one",
}

DELIVERY_KINDS: Mapping[str, str] = {
    "email.ack": "acknowledgement by email",
    "email.reply": "reply by email",
    "slack.ack": "acknowledgement in Slack",
    "slack.reply": "reply in Slack",
    "slack.status": "status note in Slack",
    "sms.reply": "reply by SMS",
}


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    kind: str  # contact | event | delivery
    title: str
    channel: str | None = None
    direction: str | None = None
    who: str | None = None
    subject: str = ""
    text: str = ""
    why: str | None = None
    attachments: Sequence[Mapping[str, Any]] = ()
    facts: Sequence[tuple[str, str]] = field(default_factory=tuple)
    state: str | None = None  # a delivery's pending | done | dead
    html: str | None = None  # an email's HTML body, sanitised (gateway.dashboard.mailview)
    contact_id: int | None = None


def explain_thread_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return THREAD_REASONS.get(reason, reason)


def timeline(
    ticket: Mapping[str, Any],
    deliveries: Sequence[Delivery],
    messages: Mapping[int, bytes] | None = None,
) -> list[Entry]:
    """Every contact, event and delivery of ``ticket``, oldest first; ``messages`` are the raw
    mails of its email contacts by contact id (their HTML is shown sanitised)."""
    messages = messages or {}
    reasons: dict[int, dict[str, Any]] = {}
    entries: list[Entry] = []
    for event in ticket.get("events", []):
        detail = event.get("detail") or {}
        if event["type"] == "contact.added" and isinstance(detail.get("contact_id"), int):
            reasons[detail["contact_id"]] = detail
            continue
        entries.append(_event_entry(event["type"], _parse(event["at"]), detail))
    for contact in ticket.get("contacts", []):
        entry = _contact_entry(contact, reasons.get(contact["id"], {}))
        if contact["id"] in messages:
            entry = replace(entry, html=sanitized_html(messages[contact["id"]]))
        entries.append(entry)
    entries.extend(_delivery_entry(d) for d in deliveries)
    order = {"event": 0, "contact": 1, "delivery": 2}
    return sorted(entries, key=lambda e: (e.at, order[e.kind]))


def _contact_entry(contact: Mapping[str, Any], added: Mapping[str, Any]) -> Entry:
    inbound = contact.get("direction") == "in"
    channel = contact.get("channel") or ""
    facts: list[tuple[str, str]] = []
    if added.get("ack"):
        facts.append(("acknowledgement", str(added["ack"])))
    for key in ("refused_refs", "unverified_identities", "identity_conflict"):
        if added.get(key):
            facts.append((key.replace("_", " "), ", ".join(str(v) for v in added[key])))
    return Entry(
        at=_parse(contact["received_at"]),
        kind="contact",
        title=f"{channel} {'from' if inbound else 'to'}",
        channel=channel,
        direction=contact.get("direction"),
        who=(contact.get("from") if inbound else contact.get("to")) or "",
        subject=contact.get("subject") or "",
        text=contact.get("text") or "",
        why=explain_thread_reason(added.get("thread_reason")) if inbound else None,
        attachments=contact.get("attachments") or (),
        facts=tuple(facts),
        contact_id=contact.get("id"),
    )


def _event_entry(type_: str, at: datetime, detail: Mapping[str, Any]) -> Entry:
    facts: list[tuple[str, str]] = []
    if type_ == "created":
        for key in ("group", "priority", "kind", "requester", "linked_to"):
            if detail.get(key) is not None:
                facts.append((key, str(detail[key])))
    elif type_ == "escalated":
        facts = [
            ("from", f"{detail.get('from_group')} (tier {detail.get('from_tier')})"),
            ("to", f"{detail.get('to_group')} (tier {detail.get('to_tier')})"),
            ("reason", str(detail.get("reason", ""))),
        ]
    elif type_ == "status.changed":
        facts = [("from", str(detail.get("from"))), ("to", str(detail.get("to")))]
        if detail.get("note"):
            facts.append(("note", str(detail["note"])))
    else:
        facts = [(str(k), _short(v)) for k, v in detail.items()]
    return Entry(at=at, kind="event", title=type_, facts=tuple(facts))


def _delivery_entry(delivery: Delivery) -> Entry:
    facts = [("attempts", str(delivery.attempts))]
    if delivery.last_error:
        facts.append(("last error", delivery.last_error))
    return Entry(
        at=delivery.created_at,
        kind="delivery",
        title=DELIVERY_KINDS.get(delivery.kind, delivery.kind),
        who=delivery.recipient,
        state=delivery.status,
        facts=tuple(facts),
    )


def _short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _parse(value: str | None) -> datetime:
    if not value:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
