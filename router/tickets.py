"""Tickets as the outside world sees them: the contract's ticket JSON, listing with cursors,
and the agent actions (escalate, reply).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer import outbox_events
from normalizer.intake import ContactRejectedError
from normalizer.refs import format_ref, parse_ref
from router import replies
from router.clock import Clock, utcnow
from router.events import add_event
from router.forwards import forwards_json, occasion, queue_forwards
from router.linking import MEANING_EVENT, split_contact
from router.replies import Said
from router.schema import (
    attachments,
    contacts,
    events,
    identities,
    requesters,
    tickets,
)
from router.settings import RouterSettings
from router.store import Store

STATUSES = ("new", "open", "pending", "resolved", "closed")
SETTABLE_STATUSES = ("open", "pending", "resolved", "closed")  # "new" is only where tickets start
CHANNELS = ("email", "fax", "phone", "sms", "slack", "api", "web")


class TicketNotFound(LookupError):
    """No ticket has this ref."""


@dataclass(frozen=True, slots=True)
class TicketQuery:
    status: str | None = None
    channel: str | None = None
    group: str | None = None
    category: str | None = None
    requester: str | None = None  # an email, E.164 phone or Slack id of the requester
    q: str | None = None  # text in the subject
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class TicketPage:
    items: list[dict[str, Any]]
    next: str | None


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The ticket id a cursor points below; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a cursor") from exc
    digits = raw[1:]
    if not raw.startswith("t") or not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise ValueError("not a cursor")  # ids are 64-bit; longer numbers overflow the driver
    return int(digits)


_SUMMARY = (
    tickets.c.id,
    tickets.c.status,
    tickets.c.kind,
    tickets.c.category,
    tickets.c.priority,
    tickets.c.owner,
    tickets.c.group_name,
    tickets.c.tier,
    tickets.c.channel,
    tickets.c.subject,
    tickets.c.created_at,
    tickets.c.updated_at,
    tickets.c.requester_id,
)


class TicketService:
    def __init__(self, store: Store, settings: RouterSettings, clock: Clock | None = None) -> None:
        self._store = store
        self.settings = settings
        self._now = clock or utcnow

    def ref(self, ticket_id: int) -> str:
        return format_ref(self.settings.ticket_prefix, ticket_id)

    def _id(self, ref: str) -> int:
        ticket_id = parse_ref(self.settings.ticket_prefix, ref)
        if ticket_id is None:
            raise TicketNotFound(ref)
        return ticket_id

    # ---- reading ------------------------------------------------------------------------
    def _summary(self, row: Any) -> dict[str, Any]:
        return {
            "ref": self.ref(row.id),
            "status": row.status,
            "kind": row.kind,
            "category": row.category,
            "priority": row.priority,
            "owner": row.owner,
            "group": row.group_name,
            "tier": _tier(row.tier),
            "channel": row.channel,
            "subject": row.subject,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
        }

    async def list(self, query: TicketQuery) -> TicketPage:
        stmt = sa.select(*_SUMMARY).order_by(tickets.c.id.desc()).limit(query.limit + 1)
        if query.cursor:
            stmt = stmt.where(tickets.c.id < decode_cursor(query.cursor))
        if query.status:
            stmt = stmt.where(tickets.c.status == query.status)
        if query.channel:
            stmt = stmt.where(tickets.c.channel == query.channel)
        if query.group:
            stmt = stmt.where(tickets.c.group_name == query.group)
        if query.category:
            stmt = stmt.where(tickets.c.category == query.category)
        if query.requester:
            who = query.requester.strip()
            stmt = stmt.where(
                tickets.c.requester_id.in_(
                    sa.select(identities.c.requester_id).where(
                        identities.c.value.in_({who, who.casefold()})
                    )
                )
            )
        if query.q:
            stmt = stmt.where(
                sa.func.lower(tickets.c.subject).contains(query.q.casefold(), autoescape=True)
            )

        rows = await self._store.read(lambda c: c.execute(stmt).all())
        items = [self._summary(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return TicketPage(items, encode_cursor(rows[query.limit - 1].id) if more else None)

    async def get(self, ref: str) -> dict[str, Any]:
        ticket_id = self._id(ref)
        result = await self._store.read(lambda c: self.ticket_json(c, ticket_id))
        if result is None:
            raise TicketNotFound(ref)
        return result

    def ticket_json(self, conn: Connection, ticket_id: int) -> dict[str, Any] | None:
        row = conn.execute(sa.select(*_SUMMARY).where(tickets.c.id == ticket_id)).first()
        if row is None:
            return None
        data = self._summary(row)
        data["requester"] = _requester_json(conn, row.requester_id)
        data["contacts"] = _contacts_json(conn, ticket_id)
        data["events"] = [
            {"at": iso(e.at), "type": e.type, "detail": e.detail}
            for e in conn.execute(
                sa.select(events.c.at, events.c.type, events.c.detail)
                .where(events.c.ticket_id == ticket_id, events.c.type != MEANING_EVENT)
                .order_by(events.c.id)
            )
        ]
        data["forwards"] = forwards_json(conn, ticket_id)
        return data

    # ---- acting -------------------------------------------------------------------------
    async def split(self, ref: str, contact_id: int) -> dict[str, Any]:
        """Move one contact to a new ticket of its own (undoing a link); the new ticket's JSON.

        :class:`TicketNotFound`; ``router.linking.ContactNotOnTicket`` / ``OnlyContact``."""
        ticket_id = self._id(ref)
        now = self._now()

        def split(conn: Connection) -> int:
            if (
                conn.execute(sa.select(tickets.c.id).where(tickets.c.id == ticket_id)).first()
                is None
            ):
                raise TicketNotFound(ref)
            return split_contact(conn, ticket_id, contact_id, now, self.settings)

        new_id = await self._store.write(split)
        return await self.get(format_ref(self.settings.ticket_prefix, new_id))

    async def escalate(self, ref: str, reason: str, group: str | None = None) -> dict[str, Any]:
        ticket_id = self._id(ref)
        groups = {g.name: g for g in self.settings.groups}
        if group is not None and group not in groups:
            raise ContactRejectedError(f"unknown group {group!r}", field="group")
        now = self._now()

        def escalate(conn: Connection) -> None:
            row = conn.execute(
                sa.select(tickets.c.group_name, tickets.c.tier).where(tickets.c.id == ticket_id)
            ).first()
            if row is None:
                raise TicketNotFound(ref)
            if group is not None:
                target = groups[group]
            else:
                higher = [g for g in self.settings.groups if g.tier > row.tier]
                if not higher:
                    raise ContactRejectedError(
                        f"{ref} is already with the highest tier ({row.group_name})", field="group"
                    )
                target = min(higher, key=lambda g: g.tier)
            conn.execute(
                sa.update(tickets)
                .where(tickets.c.id == ticket_id)
                .values(group_name=target.name, tier=target.tier, updated_at=now)
            )
            add_event(
                conn,
                ticket_id,
                "escalated",
                {
                    "from_group": row.group_name,
                    "from_tier": _tier(row.tier),
                    "to_group": target.name,
                    "to_tier": _tier(target.tier),
                    "reason": reason,
                },
                now,
            )
            replies.announce(conn, ticket_id, ref, Said.escalation(target.name, reason), now)
            queue_forwards(
                conn,
                self.settings,
                ticket_id,
                outbox_events.TICKET_ESCALATED,
                now,
                occasion=occasion("escalated"),
            )

        await self._store.write(escalate)
        return await self.get(ref)  # read after commit: the writer only writes

    async def set_status(self, ref: str, status: str, note: str = "") -> dict[str, Any]:
        """Move a ticket to ``status`` (an agent resolving, closing, parking or reopening it).

        Resolving or closing starts the reopen window (``closed_at``); a Slack requester hears
        about it in the ticket's thread. Setting the status a ticket already has changes nothing.
        """
        if status not in SETTABLE_STATUSES:
            raise ContactRejectedError(f"status must be one of {SETTABLE_STATUSES}", field="status")
        ticket_id = self._id(ref)
        now = self._now()

        def set_status(conn: Connection) -> None:
            current = conn.execute(
                sa.select(tickets.c.status).where(tickets.c.id == ticket_id)
            ).scalar()
            if current is None:
                raise TicketNotFound(ref)
            if current != status:
                done = status in ("resolved", "closed")
                conn.execute(
                    sa.update(tickets)
                    .where(tickets.c.id == ticket_id)
                    .values(status=status, updated_at=now, closed_at=now if done else None)
                )
                detail = {"from": current, "to": status, "note": note}
                add_event(conn, ticket_id, "status.changed", detail, now)
                if status in ("resolved", "closed"):
                    said = Said.status_change(status, note)
                    replies.announce(conn, ticket_id, ref, said, now)
                event = (
                    outbox_events.TICKET_RESOLVED
                    if status == "resolved"
                    else outbox_events.TICKET_UPDATED
                )
                queue_forwards(
                    conn, self.settings, ticket_id, event, now, occasion=occasion("status")
                )

        await self._store.write(set_status)
        return await self.get(ref)  # read after commit: the writer only writes

    async def reply(self, ref: str, text: str) -> None:
        """Send ``text`` to the requester on the channel they used last, via the outbox."""
        ticket_id = self._id(ref)
        now = self._now()

        def reply(conn: Connection) -> None:
            try:
                replies.queue_reply(conn, self.settings, ticket_id, ref, Said.reply(text), now)
            except LookupError as exc:
                raise TicketNotFound(ref) from exc

        await self._store.write(reply)


def _tier(tier: float) -> int | float:
    return int(tier) if float(tier).is_integer() else tier


def _requester_json(conn: Connection, requester_id: int) -> dict[str, Any]:
    name = conn.execute(
        sa.select(requesters.c.name).where(requesters.c.id == requester_id)
    ).scalar()
    ids = dict(
        conn.execute(
            sa.select(identities.c.kind, identities.c.value)
            .where(identities.c.requester_id == requester_id)
            .order_by(identities.c.id.desc())
        ).all()
    )
    return {
        "id": requester_id,
        "name": name,
        "email": ids.get("email"),
        "phone": ids.get("phone"),
        "sender_id": ids.get("sender"),
        "slack_user_id": ids.get("slack"),
    }


def _contacts_json(conn: Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(
            contacts.c.id,
            contacts.c.channel,
            contacts.c.direction,
            contacts.c.received_at,
            contacts.c.from_addr,
            contacts.c.recipient,
            contacts.c.subject,
            contacts.c.text,
            contacts.c.external_id,
            contacts.c.auto,
        )
        .where(contacts.c.ticket_id == ticket_id)
        .order_by(contacts.c.received_at, contacts.c.id)
    ).all()
    files: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for a in conn.execute(
            sa.select(attachments)
            .where(attachments.c.contact_id.in_([r.id for r in rows]))
            .order_by(attachments.c.id)
        ):
            files.setdefault(a.contact_id, []).append(
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                }
                | ({"omitted": a.omitted} if a.omitted else {})
            )
    return [
        {
            "id": r.id,
            "channel": r.channel,
            "direction": r.direction,
            "received_at": iso(r.received_at),
            "from": r.from_addr,
            "to": r.recipient,
            "subject": r.subject,
            "text": r.text,
            "external_id": r.external_id,
            "auto": r.auto,
            "attachments": files.get(r.id, []),
        }
        for r in rows
    ]
