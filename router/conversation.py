"""Threading: which existing ticket, if any, does a contact continue?

In order: the Message-IDs it replies to (In-Reply-To, then References newest first) and its
chat thread or call, looked up among every id we know for a ticket (the ones people sent and the
ones we wrote); then ``[SD-n]`` subject tags. Either way the sender must be a participant of that
ticket -- its requester, or an address seen on the ticket's thread -- or the match is refused
and recorded: a stranger's mail never lands on someone else's ticket.

A match on a resolved or closed ticket reopens it inside the reopen window; after that the
contact opens a new ticket linked to the old one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import Contact
from normalizer.refs import parse_ref
from router import prepared
from router.identity import vouched_keys
from router.schema import insert_ignore, message_ids, participants, tickets, upsert

CLOSED_STATUSES = ("resolved", "closed")


@dataclass(frozen=True, slots=True)
class TicketState:
    id: int
    status: str
    requester_id: int
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ThreadMatch:
    """The decision, with the reason recorded in the event's ``thread_reason``."""

    ticket: TicketState | None
    reason: str  # message-id | chat-thread | call | subject-tag | new | …
    refused: tuple[str, ...] = ()  # refs a non-participant tried to reach
    reopen: bool = False
    linked_to: int | None = None  # closed too long ago: the new ticket's parent


def thread_keys(contact: Contact) -> list[tuple[str, str]]:
    """Candidate ids to look up, each with the reason it would give."""
    keys = [(mid, "message-id") for mid in contact.thread.referenced_ids()]
    if contact.thread.chat_thread:
        keys.append((f"chat:{contact.thread.chat_thread}", "chat-thread"))
    if contact.thread.call_id:
        keys.append((f"call:{contact.thread.call_id}", "call"))
    return keys


def own_keys(contact: Contact) -> list[str]:
    """Ids under which later contacts may refer to this one."""
    keys = []
    if contact.thread.message_id:
        keys.append(contact.thread.message_id)
    if contact.thread.chat_thread:
        keys.append(f"chat:{contact.thread.chat_thread}")
    if contact.thread.call_id:
        keys.append(f"call:{contact.thread.call_id}")
    return keys


def find_thread(
    conn: Connection,
    contact: Contact,
    requester_id: int,
    prefix: str,
    now: datetime,
    reopen_window: timedelta,
    api_links_identities: bool = False,
) -> ThreadMatch:
    candidates: list[tuple[int, str]] = []
    keys = thread_keys(contact)
    if keys:
        found = _known_ids(conn, [k for k, _ in keys])
        candidates += [(found[k], why) for k, why in keys if k in found]
    for ref in contact.thread.subject_refs:
        tid = parse_ref(prefix, ref)
        if tid is not None:
            candidates.append((tid, "subject-tag"))

    refused: list[str] = []
    seen: set[int] = set()
    for tid, why in candidates:
        if tid in seen:
            continue
        seen.add(tid)
        found_row = prepared.first(conn, _TICKET_STATE, {"ticket_id": tid})
        if found_row is None:
            continue
        row = _TicketRow(*found_row)
        state = TicketState(row.id, row.status, row.requester_id, row.closed_at)
        if why == "chat-thread" and not _chat_window_open(contact, row, now):
            continue
        if not _is_participant(conn, state, contact, requester_id, api_links_identities):
            refused.append(f"{prefix}-{tid}")
            continue
        if row.status in CLOSED_STATUSES:
            closed_at = row.closed_at or now
            if now - closed_at <= reopen_window:
                return ThreadMatch(state, why, tuple(refused), reopen=True)
            return ThreadMatch(None, f"{why}-closed-ticket", tuple(refused), linked_to=row.id)
        return ThreadMatch(state, why, tuple(refused))
    reason = "new-stranger-refused" if refused else "new"
    return ThreadMatch(None, reason, tuple(refused))


class _TicketRow(NamedTuple):
    id: int
    status: str
    requester_id: int
    closed_at: datetime | None
    updated_at: datetime


# Built once: every reply and every chat or call step asks for its ticket's state.
_TICKET_STATE = sa.select(
    tickets.c.id,
    tickets.c.status,
    tickets.c.requester_id,
    tickets.c.closed_at,
    tickets.c.updated_at,
).where(tickets.c.id == sa.bindparam("ticket_id"))
# Up to this many ids are looked up through a statement prepared for their number; a mail
# that refers to more (a long References chain) is looked up by a statement built for it.
_PREPARED_ID_COUNTS = 16


@functools.cache
def _ids_lookup(count: int) -> sa.Select[tuple[str, int]]:
    return sa.select(message_ids.c.message_id, message_ids.c.ticket_id).where(
        message_ids.c.message_id.in_([sa.bindparam(f"id{n}") for n in range(count)])
    )


def _known_ids(conn: Connection, ids: list[str]) -> dict[str, int]:
    """The ticket each of ``ids`` is known for (those known at all)."""
    if len(ids) > _PREPARED_ID_COUNTS:
        stmt = sa.select(message_ids.c.message_id, message_ids.c.ticket_id).where(
            message_ids.c.message_id.in_(ids)
        )
        return {m: t for m, t in conn.execute(stmt).all()}
    found = prepared.rows(conn, _ids_lookup(len(ids)), {f"id{n}": m for n, m in enumerate(ids)})
    return {m: t for m, t in found}


def _chat_window_open(contact: Contact, row: Any, now: datetime) -> bool:
    """A windowed chat thread (SMS) continues only an open ticket active within the window."""
    window = contact.thread.chat_window_seconds
    if window is None:
        return True
    return row.status not in CLOSED_STATUSES and now - row.updated_at <= timedelta(seconds=window)


def _is_participant(
    conn: Connection,
    ticket: TicketState,
    contact: Contact,
    requester_id: int,
    api_links_identities: bool,
) -> bool:
    if ticket.requester_id == requester_id:
        return True
    vouched = vouched_keys(contact.sender, contact.channel, api_links_identities)
    addresses = [v for _, v in vouched]
    if not addresses:
        return False
    hit = conn.execute(
        sa.select(participants.c.address).where(
            participants.c.ticket_id == ticket.id, participants.c.address.in_(addresses)
        )
    ).first()
    return hit is not None


def add_participants(conn: Connection, ticket_id: int, addresses: Iterable[str]) -> None:
    """Record addresses as participants of a ticket (existing ones are kept)."""
    rows = [{"ticket_id": ticket_id, "address": a} for a in sorted({a for a in addresses if a})]
    if rows:
        prepared.run(conn, insert_ignore(conn, participants, "ticket_id", "address"), rows)


def remember_ids(conn: Connection, ticket_id: int, ids: Iterable[str]) -> None:
    """Map message/thread ids to a ticket.

    A Message-ID or call already known keeps its first ticket. A chat key (``chat:…``) moves to
    the newest ticket: when a windowed conversation (SMS) opened a new ticket, later messages
    continue that one.
    """
    wanted = sorted(set(ids))
    fixed = [{"message_id": m, "ticket_id": ticket_id} for m in wanted if not m.startswith("chat:")]
    moving = [{"message_id": m, "ticket_id": ticket_id} for m in wanted if m.startswith("chat:")]
    if fixed:
        prepared.run(conn, insert_ignore(conn, message_ids, "message_id"), fixed)
    if moving:
        prepared.run(conn, upsert(conn, message_ids, ("message_id",), ("ticket_id",)), moving)
