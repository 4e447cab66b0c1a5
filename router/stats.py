"""Read queries for the operators' dashboard: intake per channel over time, what became of the
acknowledgements, the queue's counts, and a ticket's deliveries. Reads only; nothing here writes.

Each is one grouped statement that runs the same on SQLite and PostgreSQL: time buckets are a
``CASE`` over fixed boundaries computed in Python, not a dialect's date functions.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.mime_locate import attachment_at
from router.blob_read import read_blob
from router.schema import attachments, blobs, contacts, events, outbox, quarantine, tickets
from router.store import Store

log = logging.getLogger(__name__)

FACETS = ("status", "channel", "group", "category", "priority")
MAX_SHOWN_MESSAGE_BYTES = 2 * 1024 * 1024  # bigger mails are shown as their text only
_FACET_COLUMNS = {
    "status": tickets.c.status,
    "channel": tickets.c.channel,
    "group": tickets.c.group_name,
    "category": tickets.c.category,
    "priority": tickets.c.priority,
}


@dataclass(frozen=True, slots=True)
class Histogram:
    """Inbound contacts per channel in ``len(starts)`` buckets of ``step``, oldest first."""

    starts: tuple[datetime, ...]
    step: timedelta
    counts: dict[str, tuple[int, ...]]  # channel -> one count per bucket

    def total(self, channel: str | None = None) -> int:
        if channel is not None:
            return sum(self.counts.get(channel, ()))
        return sum(sum(c) for c in self.counts.values())


@dataclass(frozen=True, slots=True)
class AckShares:
    """New tickets since a moment and what became of their acknowledgement, per channel."""

    tickets: dict[str, int] = field(default_factory=dict)
    acknowledged: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # suppression reason -> count


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row: an ack, a reply, a status note or (later) a forward, and its state."""

    id: int
    kind: str
    recipient: str | None
    status: str  # pending | done | dead
    attempts: int
    last_error: str | None
    created_at: datetime
    done_at: datetime | None
    ticket_id: int | None = None


class Stats:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def intake(self, now: datetime, step: timedelta, buckets: int) -> Histogram:
        """Inbound contacts per channel in the ``buckets`` steps that end at ``now``."""
        return await self._store.read(lambda c: intake_histogram(c, now, step, buckets))

    async def acks(self, since: datetime) -> AckShares:
        return await self._store.read(lambda c: ack_shares(c, since))

    async def quarantined(self, since: datetime) -> dict[str, int]:
        """Mail kept in the quarantine since a moment, per channel (``fax`` or ``email``)."""
        return await self._store.read(lambda c: quarantined_by_channel(c, since))

    async def facets(self) -> dict[str, dict[str, int]]:
        return await self._store.read(queue_facets)

    async def deliveries(self, ticket_id: int) -> list[Delivery]:
        return await self._store.read(lambda c: ticket_deliveries(c, ticket_id))

    async def dead_letters(self, limit: int = 50) -> list[Delivery]:
        return await self._store.read(lambda c: dead_letters(c, limit))

    async def attachment(self, contact_id: int, sha256: str) -> tuple[str, bytes] | None:
        """A contact's attachment as (file name, bytes), or None when it has no such file."""
        return await self._store.read(lambda c: attachment_file(c, contact_id, sha256))

    async def messages(self, ticket_id: int) -> dict[int, bytes]:
        """The raw mails (``message/rfc822``) of a ticket's inbound contacts, by contact id."""
        return await self._store.read(lambda c: raw_messages(c, ticket_id))


def intake_histogram(conn: Connection, now: datetime, step: timedelta, buckets: int) -> Histogram:
    starts = tuple(now - step * (buckets - i) for i in range(buckets))
    bucket = sa.case(
        *[(contacts.c.received_at < start + step, i) for i, start in enumerate(starts)],
        else_=buckets - 1,
    ).label("bucket")
    rows = conn.execute(
        sa.select(contacts.c.channel, bucket, sa.func.count())
        .where(
            contacts.c.direction == "in",
            contacts.c.received_at >= starts[0],
            contacts.c.received_at <= now,
        )
        .group_by(contacts.c.channel, bucket)
    ).all()
    counts: dict[str, list[int]] = {}
    for channel, index, count in rows:
        counts.setdefault(channel, [0] * buckets)[int(index)] += int(count)
    return Histogram(starts, step, {k: tuple(v) for k, v in sorted(counts.items())})


def ack_shares(conn: Connection, since: datetime) -> AckShares:
    """From the ``contact.added`` events of new tickets: their ``ack`` is ``queued`` or
    ``suppressed:<reason>``."""
    channel = events.c.detail["channel"].as_string()
    ack = events.c.detail["ack"].as_string()
    rows = conn.execute(
        sa.select(channel, ack, sa.func.count())
        .where(events.c.type == "contact.added", events.c.at >= since, ack.is_not(None))
        .group_by(channel, ack)
    ).all()
    shares = AckShares()
    reasons: Counter[str] = Counter()
    for chan, outcome, count in rows:
        chan, outcome, count = str(chan), str(outcome), int(count)
        shares.tickets[chan] = shares.tickets.get(chan, 0) + count
        if outcome == "queued":
            shares.acknowledged[chan] = shares.acknowledged.get(chan, 0) + count
        else:
            shares.suppressed[chan] = shares.suppressed.get(chan, 0) + count
            reasons[outcome.removeprefix("suppressed:")] += count
    shares.reasons.update(reasons.most_common())
    return shares


def quarantined_by_channel(conn: Connection, since: datetime) -> dict[str, int]:
    """A system mail's source is its channel; a channel's own keeps (``smtp``, an IMAP
    mailbox's name) are all mail."""
    channel = sa.case((quarantine.c.source == "fax", "fax"), else_="email").label("channel")
    rows = conn.execute(
        sa.select(channel, sa.func.count())
        .where(quarantine.c.received_at >= since)
        .group_by(channel)
    ).all()
    return {str(name): int(n) for name, n in rows}


def queue_facets(conn: Connection) -> dict[str, dict[str, int]]:
    """How many tickets have each status, channel, group, category and priority."""
    out: dict[str, dict[str, int]] = {}
    for name in FACETS:
        column = _FACET_COLUMNS[name]
        rows = conn.execute(
            sa.select(column, sa.func.count()).group_by(column).order_by(column)
        ).all()
        out[name] = {str(value) if value is not None else "": int(n) for value, n in rows}
    return out


_DELIVERY_COLUMNS: Sequence[Any] = (
    outbox.c.id,
    outbox.c.kind,
    outbox.c.recipient,
    outbox.c.status,
    outbox.c.attempts,
    outbox.c.last_error,
    outbox.c.created_at,
    outbox.c.done_at,
    outbox.c.ticket_id,
)


def ticket_deliveries(conn: Connection, ticket_id: int) -> list[Delivery]:
    rows = conn.execute(
        sa.select(*_DELIVERY_COLUMNS).where(outbox.c.ticket_id == ticket_id).order_by(outbox.c.id)
    ).all()
    return [Delivery(**row._mapping) for row in rows]


def dead_letters(conn: Connection, limit: int) -> list[Delivery]:
    rows = conn.execute(
        sa.select(*_DELIVERY_COLUMNS)
        .where(outbox.c.status == "dead")
        .order_by(outbox.c.id.desc())
        .limit(limit)
    ).all()
    return [Delivery(**row._mapping) for row in rows]


def raw_messages(conn: Connection, ticket_id: int) -> dict[int, bytes]:
    rows = conn.execute(
        sa.select(contacts.c.id, contacts.c.raw).where(
            contacts.c.ticket_id == ticket_id,
            contacts.c.direction == "in",
            contacts.c.raw_type == "message/rfc822",
            sa.func.length(contacts.c.raw) <= MAX_SHOWN_MESSAGE_BYTES,
        )
    ).all()
    return {int(r.id): bytes(r.raw) for r in rows if r.raw}


def attachment_file(conn: Connection, contact_id: int, sha256: str) -> tuple[str, bytes] | None:
    """An attachment's name and bytes: from its blob, or decoded from the part of the contact's
    raw message that holds it (checked against its sha256); None if there are none."""
    row = conn.execute(
        sa.select(attachments.c.filename, attachments.c.part)
        .where(
            attachments.c.contact_id == contact_id,
            attachments.c.sha256 == sha256,
            attachments.c.omitted.is_(None),
        )
        .limit(1)
    ).first()
    if row is None:
        return None
    blob = read_blob(conn, sa.select(blobs.c.data).where(blobs.c.sha256 == sha256))
    if blob is not None:
        return str(row.filename), blob
    if row.part is None:
        return None
    raw = read_blob(conn, sa.select(contacts.c.raw).where(contacts.c.id == contact_id))
    data = attachment_at(raw, row.part, sha256) if raw else None
    if data is None:
        log.warning("attachment %s of contact %d is not where its row says", sha256, contact_id)
        return None
    return str(row.filename), data
