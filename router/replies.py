"""Answering the requester on the channel they used last, through the outbox.

| last channel | transport    | outbox kind | payload (facts; the transport words them)    |
| ------------ | ------------ | ----------- | -------------------------------------------- |
| email        | email        | email.reply | threaded mail facts (docs/architecture.md)   |
| sms, phone   | SMS (Twilio) | sms.reply   | ``{"event", "to", "text", "ticket_ref"}``    |
| slack        | Slack        | slack.reply | ``{"event", "channel", "thread_ts", "text"}`` |
| api, fax     | email        | email.reply | when the requester has an email address      |

What is said is a :class:`Said`: an agent's reply, a status change or an escalation, as facts
(``event`` and its fields, named in ``channels/outbound/events.py``); the router never words
it. A caller is answered by SMS: a voice call can't be placed back automatically, a text can.
Every reply is also recorded on the ticket as an outbound contact (the ticket's subject and
the words an agent or a tool wrote), so the timeline shows it. Status announcements
(``slack.status``) go to a Slack ticket's thread.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer import outbox_events
from normalizer.intake import ContactRejectedError
from router import acks
from router.conversation import remember_ids
from router.events import add_event
from router.mail_thread import thread_references
from router.outbox import enqueue
from router.schema import contacts, identities, tickets
from router.settings import RouterSettings

log = logging.getLogger(__name__)


class ReplyNotPossible(ContactRejectedError):
    """Nothing can carry a reply to this ticket's requester."""


@dataclass(frozen=True, slots=True)
class Said:
    """What the requester is told, as facts: ``event`` (``reply``, ``status``, ``escalated``),
    ``text`` (the agent's words, the status note or the escalation reason, as written) and the
    new ``status`` or ``group``."""

    event: str
    text: str = ""
    status: str | None = None
    group: str | None = None

    @classmethod
    def reply(cls, text: str) -> Said:
        return cls(outbox_events.REPLY, text)

    @classmethod
    def status_change(cls, status: str, note: str) -> Said:
        return cls(outbox_events.STATUS, note, status=status)

    @classmethod
    def escalation(cls, group: str, reason: str) -> Said:
        return cls(outbox_events.ESCALATED, reason, group=group)

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"event": self.event, "text": self.text}
        if self.status is not None:
            facts["status"] = self.status
        if self.group is not None:
            facts["group"] = self.group
        return facts


_TRANSPORT = {"sms": "sms", "phone": "sms", "slack": "slack"}


@dataclass(frozen=True, slots=True)
class _Last:
    channel: str
    from_addr: str | None
    external_id: str | None
    thread_key: str | None


def _last_inbound(
    conn: Connection,
    ticket_id: int,
    channels: tuple[str, ...],
    not_from: frozenset[str] = frozenset(),  # a forward target's mail is not the requester's
) -> _Last | None:
    row = conn.execute(
        sa.select(
            contacts.c.channel, contacts.c.from_addr, contacts.c.external_id, contacts.c.thread_key
        )
        .where(
            contacts.c.ticket_id == ticket_id,
            contacts.c.direction == "in",
            contacts.c.channel.in_(channels),
            sa.func.lower(sa.func.coalesce(contacts.c.from_addr, "")).not_in(sorted(not_from))
            if not_from
            else sa.true(),
        )
        .order_by(contacts.c.id.desc())
        .limit(1)
    ).first()
    return _Last(row.channel, row.from_addr, row.external_id, row.thread_key) if row else None


def _requester_identity(conn: Connection, ticket_id: int, kind: str) -> str | None:
    return conn.execute(
        sa.select(identities.c.value)
        .join(tickets, tickets.c.requester_id == identities.c.requester_id)
        .where(tickets.c.id == ticket_id, identities.c.kind == kind)
        .order_by(identities.c.id.desc())
        .limit(1)
    ).scalar()


def queue_reply(
    conn: Connection, settings: RouterSettings, ticket_id: int, ref: str, said: Said, now: datetime
) -> str:
    """Queue what is ``said`` for the requester; returns the channel it goes out on."""
    row = conn.execute(
        sa.select(tickets.c.last_channel, tickets.c.subject, tickets.c.status).where(
            tickets.c.id == ticket_id
        )
    ).first()
    if row is None:
        raise LookupError(ref)
    channel = row.last_channel
    transport = _TRANSPORT.get(channel, "email")
    if transport not in settings.outbound_transports:
        raise ReplyNotPossible(
            f"{ref} came in by {channel}, and replies by {transport} are not enabled",
            field="channel",
        )
    if channel in ("sms", "phone"):
        sent = _sms(conn, ticket_id, ref, said, now)
    elif channel == "slack":
        sent = _slack(conn, ticket_id, ref, said, now, kind="slack.reply")
    else:
        sent = _email(conn, settings, ticket_id, ref, row.subject, said, now)
    values: dict[str, Any] = {"updated_at": now}
    if row.status == "new":
        values["status"] = "open"
    conn.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(**values))
    add_event(conn, ticket_id, "replied", sent, now)
    return str(sent["channel"])


def tell_requester(
    conn: Connection, settings: RouterSettings, ticket_id: int, ref: str, said: Said, now: datetime
) -> str:
    """Queue what a tool ``said`` for the requester; what happened, for the event's detail (the
    channel it goes out on, or ``not sent: <why>``)."""
    try:
        return queue_reply(conn, settings, ticket_id, ref, said, now)
    except ReplyNotPossible as exc:  # raised before it wrote anything
        log.warning(
            "an answer from a forward target cannot reach the requester of %s: %s", ref, exc
        )
        return f"not sent: {exc}"


def announce(conn: Connection, ticket_id: int, ref: str, said: Said, now: datetime) -> bool:
    """Tell a Slack requester about a status change in their thread; False if not a Slack ticket."""
    last = conn.execute(sa.select(tickets.c.last_channel).where(tickets.c.id == ticket_id)).scalar()
    if last != "slack":
        return False
    _slack(conn, ticket_id, ref, said, now, kind="slack.status", record=False)
    return True


def _record_out(
    conn: Connection,
    ticket_id: int,
    channel: str,
    external_id: str,
    to: str,
    subject: str,
    text: str,
    thread_key: str | None,
    settings_from: str | None,
    now: datetime,
) -> None:
    conn.execute(
        sa.insert(contacts).values(
            ticket_id=ticket_id,
            channel=channel,
            direction="out",
            external_id=external_id,
            received_at=now,
            from_addr=settings_from,
            recipient=to,
            thread_key=thread_key,
            subject=subject,
            text=text,
            auto="human",
        )
    )


def _email(
    conn: Connection,
    settings: RouterSettings,
    ticket_id: int,
    ref: str,
    subject: str,
    said: Said,
    now: datetime,
) -> dict[str, Any]:
    last = _last_inbound(conn, ticket_id, ("email",), settings.forward_addresses)
    to = last.from_addr if last is not None and last.from_addr and "@" in last.from_addr else None
    to = to or _requester_identity(conn, ticket_id, "email")
    if not to:
        raise ReplyNotPossible(f"{ref} has no email address to reply to", field="channel")
    thread = thread_references(conn, ticket_id, settings.forward_addresses)
    in_reply_to = last.external_id if last is not None else None
    message_id = acks.new_message_id(settings, ticket_id)
    payload = {
        **said.facts(),
        "to": to,
        "from_address": settings.desk_address,
        "from_name": settings.from_name,
        "ticket_subject": subject,
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": thread,  # in thread order; the transport adds in_reply_to if cut off
        "auto_submitted": None,
        "ticket_ref": ref,
    }
    enqueue(
        conn,
        "email.reply",
        payload,
        key=f"reply:{message_id}",
        ticket_id=ticket_id,
        recipient=to,
        now=now,
    )
    _record_out(
        conn,
        ticket_id,
        "email",
        message_id,
        to,
        subject,
        said.text,
        None,
        settings.desk_address,
        now,
    )
    remember_ids(conn, ticket_id, [message_id])
    return {"channel": "email", "to": to, "message_id": message_id}


def _sms(conn: Connection, ticket_id: int, ref: str, said: Said, now: datetime) -> dict[str, Any]:
    last = _last_inbound(conn, ticket_id, ("sms", "phone"))
    to = last.from_addr if last is not None and (last.from_addr or "").startswith("+") else None
    to = to or _requester_identity(conn, ticket_id, "phone")
    if not to:
        raise ReplyNotPossible(f"{ref} has no phone number to text", field="channel")
    out_id = f"out-{secrets.token_hex(8)}"
    payload = {**said.facts(), "to": to, "ticket_ref": ref}
    enqueue(
        conn,
        "sms.reply",
        payload,
        key=f"reply:{out_id}",
        ticket_id=ticket_id,
        recipient=to,
        now=now,
    )
    _record_out(conn, ticket_id, "sms", out_id, to, "", said.text, None, None, now)
    return {"channel": "sms", "to": to}


def _slack(
    conn: Connection,
    ticket_id: int,
    ref: str,
    said: Said,
    now: datetime,
    *,
    kind: str,
    record: bool = True,
) -> dict[str, Any]:
    last = _last_inbound(conn, ticket_id, ("slack",))
    key = last.thread_key if last is not None else None
    if not key or ":" not in key:
        raise ReplyNotPossible(f"{ref} has no Slack conversation to reply in", field="channel")
    channel_id, _, thread_ts = key.partition(":")
    out_id = f"out-{secrets.token_hex(8)}"
    payload = {
        **said.facts(),
        "channel": channel_id,
        "thread_ts": thread_ts or None,
        "ticket_ref": ref,
    }
    enqueue(
        conn,
        kind,
        payload,
        key=f"{kind}:{out_id}",
        ticket_id=ticket_id,
        recipient=last.from_addr if last else None,
        now=now,
    )
    if record:
        _record_out(conn, ticket_id, "slack", out_id, channel_id, "", said.text, key, None, now)
    return {"channel": "slack", "to": channel_id, "thread_ts": thread_ts or None}
