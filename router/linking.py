"""One problem, two channels, one ticket: linking a new contact to the requester's open ticket.

A contact that threads onto nothing (no reply, no chat thread, no ``[SD-n]``) but whose requester
has an open ticket (``new``, ``open``, ``pending``) last touched on *another* channel within
``link_window_minutes`` joins that ticket when

- the two texts mean the same (the cosine of their embeddings is at least ``link_similarity``), or
- the contact's category -- the channel's explicit one, or the classifier's confident guess --
  is the ticket's, and nothing contradicts it: the texts, where both have one, are not plainly
  about different things (cosine under :data:`CONTRADICTION_BELOW`). ``other`` and
  ``uncategorised`` never match.

A call's first steps (the recording) carry no words. When its transcript arrives on the ticket
the call opened and that ticket has no category yet, the transcript decides: it links the call
to the requester's open ticket about the same problem -- the call's earlier steps move there and
the call's own ticket is closed with a ``merged`` event -- or else it fills in the category
(``classified`` event).

The ticket's ``contact.linked`` event says why ("linked: same requester, similar text 0.82,
12 min after SD-41 by email"). :func:`split_contact` undoes it: the contact moves to a ticket of
its own, and both tickets log it.

Vectors are kept as ``meaning`` events (``detail``: contact id, model, base64 float16 vector),
which the ticket JSON leaves out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import Channel, Contact
from normalizer.intake import ContactRejectedError
from normalizer.refs import format_ref
from router.conversation import ThreadMatch, TicketState
from router.identity import Resolved
from router.meaning import Meaning, similarity
from router.schema import contacts, events, insert_ignore, message_ids, participants, tickets
from router.settings import UNCATEGORISED, RouterSettings
from router.triage import classify

MEANING_EVENT = "meaning"
LINKED_EVENT = "contact.linked"
OPEN_STATUSES = ("new", "open", "pending")
CONTRADICTION_BELOW = 0.30
NEVER_MATCHES = frozenset({UNCATEGORISED, "other"})
_CANDIDATES = 5


class ContactNotOnTicket(LookupError):
    """The contact id is not one of this ticket's contacts."""


class OnlyContact(ValueError):
    """The ticket has no other contact: splitting would leave it empty."""


@dataclass(frozen=True, slots=True)
class Link:
    match: ThreadMatch
    detail: dict[str, Any]  # the contact.linked event


Event = tuple[int, str, dict[str, Any]]


def relink(
    conn: Connection,
    contact: Contact,
    match: ThreadMatch,
    who: Resolved,
    meaning: Meaning | None,
    now: datetime,
    settings: RouterSettings,
) -> tuple[ThreadMatch, Link | None, list[Event]]:
    """The threading decision, revised: a new contact may join the requester's open ticket; a
    call's transcript may move its call there or fill in the category. Returns the (possibly
    new) match, the link if any, and the events it wrote so far."""
    if contact.is_automatic or who.created:  # an auto-reply is nobody reporting a problem
        return match, None, []  # again; a requester met just now has no ticket to join
    requester_id = who.requester_id
    if match.ticket is None:
        if match.linked_to is not None or match.refused:
            return match, None, []
        link = find_link(conn, contact, requester_id, meaning, now, settings)
        return (link.match if link is not None else match), link, []
    if contact.channel is not Channel.PHONE or match.reason != "call" or meaning is None:
        return match, None, []
    if not meaning.guesses or not contact.thread.call_id:
        return match, None, []
    return _transcript(conn, contact, match, requester_id, meaning, now, settings)


def _transcript(
    conn: Connection,
    contact: Contact,
    match: ThreadMatch,
    requester_id: int,
    meaning: Meaning,
    now: datetime,
    settings: RouterSettings,
) -> tuple[ThreadMatch, Link | None, list[Event]]:
    assert match.ticket is not None
    call_ticket = match.ticket.id
    row = conn.execute(
        sa.select(tickets.c.category, tickets.c.group_name).where(tickets.c.id == call_ticket)
    ).one()
    if row.category not in (None, UNCATEGORISED):
        return match, None, []
    strangers = conn.execute(
        sa.select(sa.func.count())
        .select_from(contacts)
        .where(
            contacts.c.ticket_id == call_ticket,
            sa.or_(
                contacts.c.thread_key.is_(None), contacts.c.thread_key != contact.thread.call_id
            ),
        )
    ).scalar_one()
    link = None
    if not strangers:
        link = find_link(conn, contact, requester_id, meaning, now, settings, exclude=call_ticket)
    if link is not None:
        assert link.match.ticket is not None
        into = link.match.ticket.id
        _move_all(conn, call_ticket, into)
        merged = {
            "into": format_ref(settings.ticket_prefix, into),
            "reason": link.detail["reason"],
        }
        conn.execute(
            sa.update(tickets)
            .where(tickets.c.id == call_ticket)
            .values(status="closed", closed_at=now, updated_at=now)
        )
        return link.match, link, [(call_ticket, "merged", merged)]
    category, detail = classify(None, meaning, settings)
    detail["category"] = category
    values: dict[str, Any] = {"category": category}
    spec = next((c for c in settings.categories if c.name == category), None)
    groups = {g.name: g for g in settings.groups}
    if spec is not None and spec.group in groups and row.group_name == settings.owner_group.name:
        values.update(group_name=spec.group, tier=groups[spec.group].tier)
    conn.execute(sa.update(tickets).where(tickets.c.id == call_ticket).values(**values))
    return match, None, [(call_ticket, "classified", detail)]


def _move_all(conn: Connection, from_ticket: int, to_ticket: int) -> None:
    """Every contact, thread key, meaning and participant of one ticket onto another."""
    conn.execute(
        sa.update(contacts).where(contacts.c.ticket_id == from_ticket).values(ticket_id=to_ticket)
    )
    conn.execute(
        sa.update(message_ids)
        .where(message_ids.c.ticket_id == from_ticket)
        .values(ticket_id=to_ticket)
    )
    conn.execute(
        sa.update(events)
        .where(events.c.ticket_id == from_ticket, events.c.type == MEANING_EVENT)
        .values(ticket_id=to_ticket)
    )
    addresses = (
        conn.execute(
            sa.select(participants.c.address).where(participants.c.ticket_id == from_ticket)
        )
        .scalars()
        .all()
    )
    if addresses:
        conn.execute(
            insert_ignore(conn, participants, "ticket_id", "address"),
            [{"ticket_id": to_ticket, "address": a} for a in addresses],
        )


def meaning_events(
    ticket_id: int, contact_id: int, meaning: Meaning | None, settings: RouterSettings
) -> list[Event]:
    """The ``meaning`` event that keeps a contact's vector for later links (about 0.7 kB);
    none when linking is off or there is no vector."""
    if meaning is None or not meaning.vector or settings.link_window_minutes <= 0:
        return []
    vector = base64.b64encode(meaning.vector).decode("ascii")
    detail = {"contact_id": contact_id, "model": meaning.model, "vector": vector}
    return [(ticket_id, MEANING_EVENT, detail)]


def contact_category(
    contact: Contact, meaning: Meaning | None, settings: RouterSettings
) -> str | None:
    """The explicit category, else the classifier's guess when it is confident."""
    if contact.hints.category:
        return contact.hints.category
    if meaning is None or not meaning.guesses:
        return None
    top = meaning.guesses[0]
    return top.category if top.score >= settings.triage.min_confidence else None


_OTHER_CHANNELS = {c: [o.value for o in Channel if o is not c] for c in Channel}

# Built once: it runs for every contact from a known requester.
_CANDIDATE_TICKETS = (
    sa.select(
        tickets.c.id,
        tickets.c.status,
        tickets.c.requester_id,
        tickets.c.closed_at,
        tickets.c.category,
        tickets.c.last_channel,
        tickets.c.updated_at,
    )
    .where(
        tickets.c.requester_id == sa.bindparam("requester_id"),
        tickets.c.status.in_(OPEN_STATUSES),
        tickets.c.updated_at >= sa.bindparam("since"),
        # "IN the other channels" rather than "!= this one": with the index (requester_id,
        # status, last_channel, updated_at) that is one short range per pair, not a walk over
        # every open ticket of the requester (last_channel is always a Channel value).
        tickets.c.last_channel.in_(sa.bindparam("channels", expanding=True)),
        tickets.c.id != sa.bindparam("exclude"),
    )
    .order_by(tickets.c.updated_at.desc())
    .limit(_CANDIDATES)
)


def find_link(
    conn: Connection,
    contact: Contact,
    requester_id: int,
    meaning: Meaning | None,
    now: datetime,
    settings: RouterSettings,
    exclude: int | None = None,
) -> Link | None:
    """The requester's open ticket this contact is the same problem as, if any."""
    vector = meaning.vector if meaning is not None else b""
    category = contact_category(contact, meaning, settings)
    if settings.link_window_minutes <= 0 or (not vector and category is None):
        return None  # nothing to judge "the same problem" by
    since = now - timedelta(minutes=settings.link_window_minutes)
    rows = conn.execute(
        _CANDIDATE_TICKETS,
        {
            "requester_id": requester_id,
            "since": since,
            "channels": _OTHER_CHANNELS[contact.channel],
            "exclude": exclude if exclude is not None else 0,
        },
    ).all()
    if not rows:
        return None
    vectors = _vectors(conn, [r.id for r in rows], meaning.model if meaning else "")
    for row in rows:
        best = max((similarity(vector, v) for v in vectors.get(row.id, ())), default=None)
        if best is not None and best >= settings.link_similarity:
            why = f"similar text {best:.2f}"
        elif (
            category is not None
            and category not in NEVER_MATCHES
            and category == row.category
            and (best is None or not vector or best >= CONTRADICTION_BELOW)
        ):
            why = f"same category {category}"
        else:
            continue
        minutes = max(0, round((now - row.updated_at).total_seconds() / 60))
        ref = format_ref(settings.ticket_prefix, row.id)
        reason = f"linked: same requester, {why}, {minutes} min after {ref} by {row.last_channel}"
        detail: dict[str, Any] = {
            "reason": reason,
            "channel": contact.channel.value,
            "after_channel": row.last_channel,
            "minutes": minutes,
        }
        if best is not None:
            detail["similarity"] = round(best, 3)
        if category is not None:
            detail["category"] = category
        state = TicketState(row.id, row.status, row.requester_id, row.closed_at)
        return Link(ThreadMatch(state, "linked"), detail)
    return None


def _vectors(conn: Connection, ticket_ids: list[int], model: str) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    for row in conn.execute(
        sa.select(events.c.ticket_id, events.c.detail).where(
            events.c.ticket_id.in_(ticket_ids), events.c.type == MEANING_EVENT
        )
    ):
        detail = row.detail or {}
        if detail.get("model") == model and isinstance(detail.get("vector"), str):
            found.setdefault(row.ticket_id, []).append(base64.b64decode(detail["vector"]))
    return found


def split_contact(
    conn: Connection, ticket_id: int, contact_id: int, now: datetime, settings: RouterSettings
) -> int:
    """Move one contact of a ticket to a new ticket of its own; returns the new ticket's id.

    The new ticket starts ``new`` with the old one's triage (kind, category, priority, group),
    the contact's channel and subject; the contact's thread keys and meaning go with it, so
    later replies to it follow. Both tickets get a ``split`` event.
    """
    old = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
    if old is None:
        raise ContactRejectedError("no such ticket", field="ref")
    moved = conn.execute(
        sa.select(
            contacts.c.id,
            contacts.c.channel,
            contacts.c.subject,
            contacts.c.external_id,
            contacts.c.thread_key,
            contacts.c.from_addr,
        ).where(contacts.c.id == contact_id, contacts.c.ticket_id == ticket_id)
    ).first()
    if moved is None:
        raise ContactNotOnTicket(contact_id)
    others = conn.execute(
        sa.select(sa.func.count())
        .select_from(contacts)
        .where(contacts.c.ticket_id == ticket_id, contacts.c.id != contact_id)
    ).scalar_one()
    if not others:
        raise OnlyContact(contact_id)
    new_id: int = conn.execute(
        sa.insert(tickets).returning(tickets.c.id),
        {
            "status": "new",
            "kind": old.kind,
            "category": old.category,
            "priority": old.priority,
            "owner": old.owner,
            "group_name": old.group_name,
            "tier": old.tier,
            "channel": moved.channel,
            "last_channel": moved.channel,
            "subject": moved.subject,
            "requester_id": old.requester_id,
            "created_at": now,
            "updated_at": now,
        },
    ).scalar_one()
    conn.execute(sa.update(contacts).where(contacts.c.id == contact_id).values(ticket_id=new_id))
    keys = [moved.external_id]
    if moved.thread_key:
        keys += [f"chat:{moved.thread_key}", f"call:{moved.thread_key}"]
    conn.execute(
        sa.update(message_ids)
        .where(message_ids.c.ticket_id == ticket_id, message_ids.c.message_id.in_(keys))
        .values(ticket_id=new_id)
    )
    for row in conn.execute(
        sa.select(events.c.id, events.c.detail).where(
            events.c.ticket_id == ticket_id, events.c.type == MEANING_EVENT
        )
    ).all():
        if (row.detail or {}).get("contact_id") == contact_id:
            conn.execute(sa.update(events).where(events.c.id == row.id).values(ticket_id=new_id))
    addresses = (
        conn.execute(sa.select(participants.c.address).where(participants.c.ticket_id == ticket_id))
        .scalars()
        .all()
    )
    if addresses:
        conn.execute(
            sa.insert(participants), [{"ticket_id": new_id, "address": a} for a in addresses]
        )
    conn.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(updated_at=now))
    old_ref, new_ref = (
        format_ref(settings.ticket_prefix, ticket_id),
        format_ref(settings.ticket_prefix, new_id),
    )
    conn.execute(
        sa.insert(events),
        [
            {
                "ticket_id": ticket_id,
                "at": now,
                "type": "split",
                "detail": {"contact_id": contact_id, "to": new_ref},
            },
            {
                "ticket_id": new_id,
                "at": now,
                "type": "created",
                "detail": {
                    "thread_reason": "split",
                    "split_from": old_ref,
                    "contact_id": contact_id,
                },
            },
        ],
    )
    return new_id
