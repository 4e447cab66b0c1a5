"""What automatic mail does to tickets: bounces, feedback reports, read receipts, auto-replies.

A mail classed ``bounce``, ``feedback``, ``mdn``, ``auto_reply`` or ``loop``
(:mod:`normalizer.autoclass`) never opens a ticket and is never answered. Instead:

1. If it answers a message we wrote -- its returned message's Message-ID, its In-Reply-To or
   References name an id under ``message_ids`` that spoc made (``spoc.<n>.<hex>@<our
   domain>``: 64 random bits nobody else can guess) -- it is recorded on that ticket.
2. Else, if it continues a ticket's thread (a known id, or an ``[SD-n]`` tag in its subject or
   in the subject of a message of ours it returns) and its sender is a participant of that
   ticket (an out-of-office from the requester), it is recorded on that ticket.
3. Else it is kept in the quarantine, kind ``system`` (``spoc quarantine list --system``), and
   the desk's queue never sees it.

Recorded means: the contact is stored on the ticket with its class, one event names what
happened, and nothing else changes -- not the status, not the participants, no ack. A bounce
of our own message (found by 1.) that reports a failure adds the event
``acknowledgement.bounced`` (``reply.bounced`` for an agent's reply) and marks the address we
sent that message to undeliverable: :mod:`router.acks` sends it no more acknowledgements for
``UNDELIVERABLE_DAYS``. A feedback (ARF spam-complaint) report about a message of ours does the
same with ``acknowledgement.complained``. A delay notice only adds ``delivery.delayed``. Other
classes add ``<class>.received`` (``auto_reply.received``, ``mdn.received`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import AutoClass, Channel, Contact
from normalizer.intake import IntakeResult
from normalizer.refs import format_ref, parse_ref
from router import prepared
from router.events import add_events
from router.quarantine import SYSTEM, keep_in
from router.schema import message_ids, outbox, participants, tickets, undeliverable, upsert
from router.settings import RouterSettings

SYSTEM_CLASSES = frozenset(
    {AutoClass.BOUNCE, AutoClass.FEEDBACK, AutoClass.MDN, AutoClass.AUTO_REPLY, AutoClass.LOOP}
)
MAIL_CHANNELS = (Channel.EMAIL, Channel.FAX)
UNDELIVERABLE_DAYS = 30.0
_SENT_KINDS = {"email.ack": "acknowledgement", "email.reply": "reply"}

StoreContact = Callable[[Connection, Contact, int, datetime], int]


def is_system_mail(contact: Contact) -> bool:
    """Mail a machine wrote that must neither open a ticket nor be answered."""
    return contact.channel in MAIL_CHANNELS and contact.auto in SYSTEM_CLASSES


def is_our_message_id(settings: RouterSettings, message_id: str) -> bool:
    """An id spoc wrote (router.acks.new_message_id): ``spoc.<ticket>.<hex>@<id domain>``."""
    local, _, domain = message_id.rpartition("@")
    return local.startswith("spoc.") and domain.casefold() == settings.message_id_domain.casefold()


def route_system_mail(
    conn: Connection,
    contact: Contact,
    settings: RouterSettings,
    now: datetime,
    store_contact: StoreContact,
) -> IntakeResult:
    """Record ``contact`` on the ticket it answers, or keep it in the quarantine."""
    auto = contact.auto.value
    ours = _answers_our_message(conn, contact, settings)
    if ours is not None:
        ticket_id, why, message_id = ours[0], "our-message-id", ours[1]
    else:
        found = _continues_a_thread(conn, contact, settings)
        if found is None:
            return _quarantined(conn, contact, now)
        ticket_id, why, message_id = found, "participant-thread", None
    contact_id = store_contact(conn, contact, ticket_id, now)
    detail: dict[str, Any] = {
        "contact_id": contact_id,
        "channel": contact.channel.value,
        "auto": auto,
        "thread_reason": why,
        "ack": f"suppressed:{auto}",
    }
    event = f"{auto}.received"
    if contact.auto is AutoClass.BOUNCE:
        event = "delivery.bounced"
        if contact.report.delivery_failed is False:
            event = "delivery.delayed"
        elif message_id is not None:
            event = _stop_mailing(conn, contact, ticket_id, message_id, "bounced", detail, now)
    elif contact.auto is AutoClass.FEEDBACK and message_id is not None:
        # A spam complaint about a message of ours: mailing that person again hurts the desk.
        event = _stop_mailing(conn, contact, ticket_id, message_id, "complained", detail, now)
    add_events(conn, [(ticket_id, event, detail)], now)
    return IntakeResult(
        format_ref(settings.ticket_prefix, ticket_id),
        ticket_id,
        contact_id,
        created=False,
        duplicate=False,
        thread_reason=why,
        ack_suppressed=auto,
    )


def _stop_mailing(
    conn: Connection,
    contact: Contact,
    ticket_id: int,
    message_id: str,
    what: str,
    detail: dict[str, Any],
    now: datetime,
) -> str:
    """Mark the address our ``message_id`` went to undeliverable; returns the event type."""
    sent_as, addresses = _bounced_delivery(conn, contact, ticket_id, message_id)
    event = f"{sent_as}.{what}"
    detail["message_id"] = message_id
    detail["undeliverable"] = addresses
    mark_undeliverable(conn, addresses, ticket_id, f"{event}: {message_id}", now)
    return event


def is_undeliverable(conn: Connection, address: str, now: datetime) -> bool:
    """A bounce of ours said ``address`` cannot be reached, within ``UNDELIVERABLE_DAYS``."""
    since = now - timedelta(days=UNDELIVERABLE_DAYS)
    return prepared.first(conn, _UNDELIVERABLE, {"address": address, "since": since}) is not None


# Built once: it runs before every email acknowledgement.
_UNDELIVERABLE = sa.select(undeliverable.c.address).where(
    undeliverable.c.address == sa.bindparam("address"),
    undeliverable.c.marked_at > sa.bindparam("since"),
)


def mark_undeliverable(
    conn: Connection, addresses: list[str], ticket_id: int, reason: str, now: datetime
) -> None:
    rows = [
        {"address": a, "ticket_id": ticket_id, "reason": reason[:200], "marked_at": now}
        for a in sorted(set(addresses))
    ]
    if rows:
        conn.execute(
            upsert(conn, undeliverable, ("address",), ("ticket_id", "reason", "marked_at")), rows
        )


def _answers_our_message(
    conn: Connection, contact: Contact, settings: RouterSettings
) -> tuple[int, str] | None:
    """(ticket id, our message id) when the mail names a message spoc wrote."""
    wanted = [
        mid
        for mid in dict.fromkeys(
            (
                *contact.report.original_ids,
                *contact.thread.referenced_ids(),
                *([contact.thread.message_id] if contact.thread.message_id else []),  # ours, back
            )
        )
        if is_our_message_id(settings, mid)
    ]
    if not wanted:
        return None
    found = dict(
        conn.execute(
            sa.select(message_ids.c.message_id, message_ids.c.ticket_id).where(
                message_ids.c.message_id.in_(wanted)
            )
        ).all()
    )
    for mid in wanted:
        if mid in found:
            return int(found[mid]), mid
    return None


def _continues_a_thread(conn: Connection, contact: Contact, settings: RouterSettings) -> int | None:
    """A ticket whose thread the mail continues and on which its sender is a participant, or
    the ticket named in the subject of a message from our address that a bounce returns."""
    candidates: list[int] = []
    ids = list(contact.thread.referenced_ids())
    if ids:
        found = dict(
            conn.execute(
                sa.select(message_ids.c.message_id, message_ids.c.ticket_id).where(
                    message_ids.c.message_id.in_(ids)
                )
            ).all()
        )
        candidates += [int(found[m]) for m in ids if m in found]
    candidates += _ticket_ids(settings, contact.thread.subject_refs)
    sender = contact.sender.email
    for tid in dict.fromkeys(candidates):
        if sender and _is_participant(conn, tid, sender):
            return tid
    if settings.our_addresses.intersection(contact.report.original_senders):
        for tid in _ticket_ids(settings, contact.report.original_subject_refs):
            if _ticket_exists(conn, tid):
                return tid
    return None


def _ticket_ids(settings: RouterSettings, refs: tuple[str, ...]) -> list[int]:
    ids = (parse_ref(settings.ticket_prefix, ref) for ref in refs)
    return [tid for tid in ids if tid is not None]


def _is_participant(conn: Connection, ticket_id: int, address: str) -> bool:
    hit = conn.execute(
        sa.select(participants.c.address).where(
            participants.c.ticket_id == ticket_id, participants.c.address == address
        )
    ).first()
    return hit is not None


def _ticket_exists(conn: Connection, ticket_id: int) -> bool:
    return (
        conn.execute(sa.select(tickets.c.id).where(tickets.c.id == ticket_id)).first() is not None
    )


def _bounced_delivery(
    conn: Connection, contact: Contact, ticket_id: int, message_id: str
) -> tuple[str, list[str]]:
    """What we had sent as ``message_id`` (an acknowledgement or a reply), and to whom.

    The address is the one we sent to (from the outbox row), whatever the report calls it; a
    message no longer in the outbox falls back to the report's failed recipients that are
    participants of the ticket."""
    rows = conn.execute(
        sa.select(outbox.c.kind, outbox.c.recipient, outbox.c.payload).where(
            outbox.c.ticket_id == ticket_id, outbox.c.kind.in_(list(_SENT_KINDS))
        )
    ).all()
    for row in rows:
        payload = row.payload if isinstance(row.payload, dict) else {}
        if payload.get("message_id") == message_id and row.recipient:
            return _SENT_KINDS[row.kind], [str(row.recipient)]
    failed = [a for a in contact.report.failed_recipients if _is_participant(conn, ticket_id, a)]
    return "delivery", failed


def _quarantined(conn: Connection, contact: Contact, now: datetime) -> IntakeResult:
    auto = contact.auto.value
    receipt = keep_in(
        conn,
        contact.raw,
        kind=SYSTEM,
        source=contact.channel.value,
        reason=f"{auto}: matches no ticket",
        now=now,
        raw_type=contact.raw_type,
        envelope_sender=contact.envelope_sender,
        from_addr=contact.sender.address,
        subject=contact.subject,
    )
    return IntakeResult(
        "",
        0,
        0,
        created=False,
        duplicate=receipt.duplicate,
        thread_reason=f"quarantined:{auto}",
        quarantine_id=receipt.id,
    )
