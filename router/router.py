"""The router: every channel's contacts go through :meth:`Router.submit`.

One transaction per contact (group-committed by the store; a failing contact fails alone):
dedupe on ``(channel, external_id)``, identity, threading, triage and assignment for new tickets,
the contact with its attachments, events, participants and the outbox rows it causes. The caller
hears back only after COMMIT.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer import outbox_events
from normalizer.api import content_digest
from normalizer.contact import Channel, Contact
from normalizer.intake import ContactRejectedError, IdempotencyKeyConflict, IntakeResult
from normalizer.refs import format_ref
from router import acks, blob_write, linking, prepared
from router.clock import Clock, utcnow
from router.conversation import ThreadMatch, add_participants, find_thread, own_keys, remember_ids
from router.events import add_events
from router.forwards import queue_forwards
from router.identity import Resolved, resolve_requester, vouched_keys
from router.legacy import legacy_address
from router.meaning import Meaning, MeaningReader
from router.outbox import queued_since_asked
from router.schema import attachments, blobs, contacts, insert_ignore, tickets
from router.settings import RouterSettings
from router.store import Store
from router.system_mail import is_system_mail, route_system_mail
from router.thread_lock import lock_conversation
from router.triage import check_category, triage
from router.vendor_mail import relay_vendor_reply, vendor_answer, vendor_target

log = logging.getLogger(__name__)


# Built once: the hot path's statements skip construction and reuse the compiled form.
_SEEN = sa.select(contacts.c.id, contacts.c.ticket_id, contacts.c.from_addr).where(
    contacts.c.channel == sa.bindparam("channel"),
    contacts.c.external_id == sa.bindparam("external_id"),
)
_NEW_TICKET = sa.insert(tickets).returning(tickets.c.id)
_NEW_CONTACT = sa.insert(contacts).returning(contacts.c.id)
_NEW_CONTACT_RAW_LATER = (  # a big raw message, streamed in after the insert (SQLite)
    sa.insert(contacts).values(raw=blob_write.zeroblob("raw_size")).returning(contacts.c.id)
)
_NEW_ATTACHMENTS = sa.insert(attachments)
# The columns set are the parameters given (updated_at, and last_channel, status, closed_at
# when they change), as an INSERT's are.
_CONTINUE_TICKET = sa.update(tickets).where(tickets.c.id == sa.bindparam("ticket_id"))


# Channels whose idempotency key the sender chooses (a Message-ID, an API external_id): the
# same key from someone else is not a retry. (Twilio and Slack ids come from the provider.)
_SENDER_CHOSEN_KEYS = (Channel.EMAIL, Channel.FAX, Channel.API)


def _same_sender(stored: str | None, contact: Contact) -> bool:
    if contact.channel not in _SENDER_CHOSEN_KEYS:
        return True
    return (stored or "").casefold() == (contact.sender.address or "").casefold()


def _claimed_by_another(contact: Contact) -> Contact:
    """The same key from another sender: a mail gets a key of its own (its Message-ID made
    unique by its bytes, so its own retries still dedupe); an API client is refused rather than
    shown someone else's ticket."""
    if contact.channel is Channel.API:
        raise IdempotencyKeyConflict(
            "external_id is already used by a contact from another sender", field="external_id"
        )
    digest = hashlib.sha256(contact.raw or contact.text.encode()).hexdigest()[:16]
    return replace(contact, external_id=f"{contact.external_id}#{digest}")


def _seen(conn: Connection, contact: Contact) -> tuple[int, int, str | None] | None:
    """The stored contact with this one's dedupe key: (id, ticket id, sender), or None."""
    row = prepared.first(
        conn, _SEEN, {"channel": contact.channel.value, "external_id": contact.external_id}
    )
    return None if row is None else (row[0], row[1], row[2])


def _refuse_other_content(conn: Connection, contact_id: int, contact: Contact) -> None:
    """An API retry must say what the first call said: the same ``external_id`` with another
    sender, subject, text or category is refused, not answered with the old ticket (the new
    text would be lost without a word). Compared on the stored request body; when either side
    is not an API body (a contact built in code) there is nothing to compare."""
    stored = conn.execute(sa.select(contacts.c.raw).where(contacts.c.id == contact_id)).scalar()
    before, now = content_digest(stored), content_digest(contact.raw)
    if before is not None and now is not None and before != now:
        raise IdempotencyKeyConflict(
            "external_id is already used for a contact with other content; "
            "send a new external_id for a new contact",
            field="external_id",
        )


class Router:
    """Implements :class:`normalizer.intake.Intake` on top of a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        settings: RouterSettings,
        clock: Clock | None = None,
        meaning: MeaningReader | None = None,
    ) -> None:
        self._store = store
        self._meaning = meaning  # read by the store, before the write transaction
        self.settings = settings
        self._now = clock or utcnow
        self._reopen_window = timedelta(days=settings.reopen_window_days)

    async def submit(self, contact: Contact) -> IntakeResult:
        if contact.sender.is_empty():
            raise ContactRejectedError("the contact has no sender address", field="from")
        if not contact.external_id:
            raise ContactRejectedError("the contact has no external id", field="external_id")
        check_category(contact, self.settings)
        vendor = vendor_target(self.settings, contact)
        answer = None  # a vendor's mail: its new text, cut here, not in the write transaction
        if vendor is not None and vendor.relay_replies:
            answer = await asyncio.to_thread(vendor_answer, contact.text)
        if self._meaning is None:
            return await self._store.write(lambda conn: self._ingest(conn, contact, None, answer))
        reading = self._meaning.reading(contact)  # run by the store before the transaction
        return await self._store.write(
            lambda conn: self._ingest(conn, contact, reading.meaning, answer),
            before=reading.run if reading.has_model else None,  # no model: nothing to run
        )

    def _ingest(
        self, conn: Connection, contact: Contact, meaning: Meaning | None, vendor_text: str | None
    ) -> IntakeResult:
        """:meth:`ingest`, saying whether it queued anything in the outbox (``queued``): the
        gateway wakes the dispatcher only then."""
        queued_since_asked(conn)  # forget what an earlier job on this connection queued
        result = self.ingest(conn, contact, meaning, vendor_text)
        return replace(result, queued=True) if queued_since_asked(conn) else result

    # Runs on the store's writer thread, inside the contact's transaction.
    def ingest(
        self,
        conn: Connection,
        contact: Contact,
        meaning: Meaning | None = None,
        vendor_text: str | None = None,
    ) -> IntakeResult:
        now = self._now()
        prefix = self.settings.ticket_prefix
        lock_conversation(conn, contact)  # another instance's contact of this thread goes first
        seen = _seen(conn, contact)
        if seen is not None and not _same_sender(seen[2], contact):
            contact = _claimed_by_another(contact)
            seen = _seen(conn, contact)
        if seen is not None and contact.channel is Channel.API:
            _refuse_other_content(conn, seen[0], contact)
        if seen is not None:
            seen_id, seen_ticket, _ = seen
            return IntakeResult(
                format_ref(prefix, seen_ticket),
                seen_ticket,
                seen_id,
                created=False,
                duplicate=True,
                thread_reason="duplicate",
            )
        if is_system_mail(contact):  # bounces, auto-replies...: never a new ticket, never an ack
            return route_system_mail(conn, contact, self.settings, now, self._store_contact)

        api_links = self.settings.api_links_identities
        who = resolve_requester(conn, contact.sender, contact.channel, now, api_links)
        match = find_thread(
            conn, contact, who.requester_id, prefix, now, self._reopen_window, api_links
        )
        match, link, new_events = linking.relink(
            conn, contact, match, who, meaning, now, self.settings
        )  # new_events: written in one statement
        vendor = vendor_target(self.settings, contact)  # an email target answering by mail
        if match.ticket is not None:
            ticket_id, created = match.ticket.id, False
            self._continue_ticket(conn, contact, match, now, new_events, vendor is None)
        else:
            ticket_id = self._open_ticket(conn, contact, who, match, now, new_events, meaning)
            created = True
        ref = format_ref(prefix, ticket_id)

        contact_id = self._store_contact(conn, contact, ticket_id, now)
        thread_ids = own_keys(contact)
        if match.refused:
            # A stranger refused by a chat thread's ticket gets a ticket of their own, but the
            # thread stays with the ticket it belongs to.
            thread_ids = [k for k in thread_ids if not k.startswith("chat:")]
        add_participants(conn, ticket_id, self._participants(contact))

        detail: dict[str, Any] = {
            "contact_id": contact_id,
            "thread_reason": match.reason,
            "channel": contact.channel.value,
        }
        if match.refused:
            detail["refused_refs"] = list(match.refused)
        if who.conflict:
            detail["identity_conflict"] = list(who.conflict)
        if who.unverified:
            detail["unverified_identities"] = list(who.unverified)
        if contact.forwarded_by:
            detail["forwarded_by"] = contact.forwarded_by
        if contact.problems:
            detail["parse_problems"] = list(contact.problems)
        if contact.tls:
            detail["tls"] = contact.tls
        legacy = legacy_address(contact, self.settings)
        if legacy:
            detail["legacy_address"] = legacy
        if link is not None:
            new_events.append(
                (ticket_id, linking.LINKED_EVENT, {**link.detail, "contact_id": contact_id})
            )
        new_events += linking.meaning_events(ticket_id, contact_id, meaning, self.settings)
        acked = False
        suppressed: str | None = None  # why no ack, for the gateway's metrics
        if created or link is not None:  # a linked contact hears which ticket it joined
            message_id, refusal = acks.queue_ack(
                conn,
                contact,
                ticket_id,
                ref,
                self.settings,
                now,
                new_sender=who.created,
                requester_id=who.requester_id,
            )
            if message_id is not None:
                thread_ids.append(message_id)  # a reply to the ack threads onto the ticket
                acked = True
            suppressed = None if acked else refusal
            detail["ack"] = "queued" if acked else f"suppressed:{refusal}"
        remember_ids(conn, ticket_id, thread_ids)
        if vendor is not None and not created:
            detail["relay"] = relay_vendor_reply(
                conn, self.settings, vendor, ticket_id, ref, contact, vendor_text, now
            )
        new_events.append((ticket_id, "contact.added", detail))
        add_events(conn, new_events, now)
        queue_forwards(
            conn,
            self.settings,
            ticket_id,
            outbox_events.TICKET_CREATED if created else outbox_events.CONTACT_ADDED,
            now,
            occasion="created" if created else f"contact.{contact_id}",
            contact_id=contact_id,
            sender=contact.sender.address,
        )
        return IntakeResult(
            ref,
            ticket_id,
            contact_id,
            created=created,
            duplicate=False,
            thread_reason=match.reason,
            acknowledged=acked,
            legacy_address=legacy,
            ack_suppressed=suppressed,
        )

    def _open_ticket(
        self,
        conn: Connection,
        contact: Contact,
        who: Resolved,
        match: ThreadMatch,
        now: datetime,
        new_events: list[tuple[int, str, dict[str, Any]]],
        meaning: Meaning | None = None,
    ) -> int:
        vouched = [
            v
            for _, v in vouched_keys(
                contact.sender, contact.channel, self.settings.api_links_identities
            )
        ]
        decided = triage(contact, self.settings, vouched, meaning)
        owner = self.settings.owner_group
        ticket_id: int = prepared.value(
            conn,
            _NEW_TICKET,
            {
                "status": "new",
                "kind": decided.kind.value,
                "category": decided.category,
                "priority": decided.priority,
                "owner": owner.name,
                "group_name": decided.group.name,
                "tier": decided.group.tier,
                "channel": contact.channel.value,
                "last_channel": contact.channel.value,
                "subject": contact.subject[:998],
                "requester_id": who.requester_id,
                "parent_id": match.linked_to,
                "created_at": now,
                "updated_at": now,
            },
        )
        detail: dict[str, Any] = {
            "thread_reason": match.reason,
            "group": decided.group.name,
            "tier": decided.group.tier,
            "priority": decided.priority,
            "kind": decided.kind.value,
            "triage": decided.detail,
            "requester": "new" if who.created else "known",
        }
        if who.linked:
            detail["linked_identities"] = list(who.linked)
        if match.linked_to is not None:
            detail["linked_to"] = format_ref(self.settings.ticket_prefix, match.linked_to)
            new_events.append(
                (
                    match.linked_to,
                    "linked",
                    {"ticket": format_ref(self.settings.ticket_prefix, ticket_id)},
                )
            )
        new_events.append((ticket_id, "created", detail))
        if decided.classified is not None:
            new_events.append((ticket_id, "classified", decided.classified))
        return ticket_id

    def _continue_ticket(
        self,
        conn: Connection,
        contact: Contact,
        match: ThreadMatch,
        now: datetime,
        new_events: list[tuple[int, str, dict[str, Any]]],
        from_requester: bool = True,
    ) -> None:
        assert match.ticket is not None
        values: dict[str, Any] = {"updated_at": now}
        if from_requester:  # a forward target's mail leaves the requester's channel alone
            values["last_channel"] = contact.channel.value
        if match.reopen:
            values.update(status="open", closed_at=None)
            new_events.append(
                (
                    match.ticket.id,
                    "reopened",
                    {"from_status": match.ticket.status, "thread_reason": match.reason},
                )
            )
        prepared.run(conn, _CONTINUE_TICKET, {**values, "ticket_id": match.ticket.id})

    def _store_contact(
        self, conn: Connection, contact: Contact, ticket_id: int, now: datetime
    ) -> int:
        ours = self.settings.our_addresses
        # The desk address or alias it reached; else what the channel accepted it for (postmaster@).
        recipient = next((r for r in contact.recipients if r in ours), None) or next(
            iter(contact.recipients), None
        )
        raw = contact.raw or None
        streamed = blob_write.streams(conn, raw)
        values: dict[str, Any] = {
            "ticket_id": ticket_id,
            "channel": contact.channel.value,
            "direction": "in",
            "external_id": contact.external_id,
            "received_at": contact.received_at,
            "from_addr": contact.sender.address,
            "from_name": contact.sender.name,
            "recipient": recipient,
            "thread_key": contact.thread.chat_thread or contact.thread.call_id,
            "subject": contact.subject[:998],
            "text": contact.text,
            "auto": contact.auto.value,
            "raw_type": contact.raw_type,
            **({"raw_size": len(raw)} if streamed and raw else {"raw": raw}),
        }
        if streamed:  # the zeroblob is a SQL expression: left to SQLAlchemy
            contact_id: int = conn.execute(_NEW_CONTACT_RAW_LATER, values).scalar_one()
        else:
            contact_id = prepared.value(conn, _NEW_CONTACT, values)
        if streamed and raw:
            blob_write.fill(conn, contacts, "raw", contact_id, raw)
        if contact.attachments:
            # An attachment inside the stored raw message is kept there only: its row says
            # where (``part``) and it is decoded when served; the others get a blob.
            kept = [
                a for a in contact.attachments if a.omitted is None and not contact.keeps_in_raw(a)
            ]
            if kept:
                prepared.run(
                    conn,
                    insert_ignore(conn, blobs, "sha256"),
                    [{"sha256": a.sha256, "size": a.size, "data": a.data} for a in kept],
                )
            prepared.run(
                conn,
                _NEW_ATTACHMENTS,
                [
                    {
                        "contact_id": contact_id,
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": a.size,
                        "sha256": a.sha256,
                        "omitted": a.omitted,
                        "part": a.part if contact.keeps_in_raw(a) else None,
                    }
                    for a in contact.attachments
                ],
            )
        return contact_id

    def _participants(self, contact: Contact) -> list[str]:
        ours = self.settings.our_addresses
        people = [
            v
            for _, v in vouched_keys(
                contact.sender, contact.channel, self.settings.api_links_identities
            )
        ]
        people += [a for a in contact.visible_recipients if a not in ours]
        return people
