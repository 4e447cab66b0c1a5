"""The operator's view of the outbox: what waits, what is dead, retrying one, the numbers.

Used by ``spoc outbox list|retry``, ``GET /api/outbox``, ``POST /api/outbox/{id}/retry`` and
``/metrics``. Listings are newest first with the same cursors as ``/api/tickets``. An item's
JSON never holds the payload (message text stays out of listings)::

    {"id": 12, "kind": "email.reply", "status": "dead", "ticket_ref": "SD-42",
     "target": "alice@example.org", "attempts": 3, "created_at": "…", "next_attempt_at": "…",
     "leased_until": null, "done_at": "…", "last_error": "relay answered 550 …",
     "idempotency_key": "reply:spoc.42.3.ab12@servicedesk.example.com"}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.clock import Clock, utcnow
from router.outbox import DEAD, DONE, PENDING, delivery_target
from router.schema import outbox
from router.store import Store
from router.tickets import decode_cursor, encode_cursor, iso

STATUSES = (PENDING, DEAD, DONE)
LISTED_BY_DEFAULT = (PENDING, DEAD)


class OutboxItemNotFound(LookupError):
    """No outbox row has this id."""


class OutboxRetryRefused(Exception):
    """The row cannot be retried now (delivered already, or being sent this moment)."""


@dataclass(frozen=True, slots=True)
class OutboxQuery:
    status: str | None = None  # pending | dead | done; None: pending and dead
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxPage:
    items: list[dict[str, Any]]
    next: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    dead: int
    oldest_pending_at: datetime | None  # when the oldest waiting row was queued


_COLUMNS = (
    outbox.c.id,
    outbox.c.kind,
    outbox.c.status,
    outbox.c.payload,
    outbox.c.recipient,
    outbox.c.attempts,
    outbox.c.created_at,
    outbox.c.next_attempt_at,
    outbox.c.locked_until,
    outbox.c.done_at,
    outbox.c.last_error,
    outbox.c.idempotency_key,
)


def item_json(row: Any) -> dict[str, Any]:
    payload = row.payload if isinstance(row.payload, dict) else {}
    ref = payload.get("ticket_ref")
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "ticket_ref": ref if isinstance(ref, str) else None,
        "target": delivery_target(row.recipient, payload),
        "attempts": row.attempts,
        "created_at": iso(row.created_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.status == PENDING else None,
        "leased_until": iso(row.locked_until),
        "done_at": iso(row.done_at),
        "last_error": row.last_error,
        "idempotency_key": row.idempotency_key,
    }


class OutboxAdmin:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._now = clock or utcnow

    async def list(self, query: OutboxQuery) -> OutboxPage:
        """Newest first. ValueError for a cursor that is not one of ours."""
        statuses = (query.status,) if query.status else LISTED_BY_DEFAULT
        stmt = (
            sa.select(*_COLUMNS)
            .where(outbox.c.status.in_(statuses))
            .order_by(outbox.c.id.desc())
            .limit(query.limit + 1)
        )
        if query.cursor:
            stmt = stmt.where(outbox.c.id < decode_cursor(query.cursor))
        rows = await self._store.read(lambda c: c.execute(stmt).all())
        more = len(rows) > query.limit
        next_cursor = encode_cursor(rows[query.limit - 1].id) if more else None
        return OutboxPage([item_json(r) for r in rows[: query.limit]], next_cursor)

    async def get(self, item_id: int) -> dict[str, Any]:
        """One row's item JSON, whatever its status. :class:`OutboxItemNotFound`."""

        def get(conn: Connection) -> dict[str, Any]:
            row = conn.execute(sa.select(*_COLUMNS).where(outbox.c.id == item_id)).first()
            if row is None:
                raise OutboxItemNotFound(item_id)
            return item_json(row)

        return await self._store.read(get)

    async def retry(self, item_id: int) -> dict[str, Any]:
        """Make a row due now; a dead one is pending again with its attempts and lifetime
        starting over. :class:`OutboxItemNotFound`, :class:`OutboxRetryRefused`."""
        now = self._now()

        def retry(conn: Connection) -> dict[str, Any]:
            row = conn.execute(
                sa.select(*_COLUMNS).where(outbox.c.id == item_id).with_for_update()
            ).first()
            if row is None:
                raise OutboxItemNotFound(item_id)
            if row.status == DONE:
                raise OutboxRetryRefused(f"outbox {item_id} was delivered already")
            if row.status == PENDING and row.locked_until is not None and row.locked_until > now:
                raise OutboxRetryRefused(f"outbox {item_id} is being delivered right now")
            values: dict[str, Any] = {"next_attempt_at": now}
            if row.status == DEAD:
                values.update(status=PENDING, attempts=0, requeued_at=now, done_at=None)
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == item_id, outbox.c.status == row.status)
                .values(locked_until=None, claim_token=None, **values)
            )
            updated = conn.execute(sa.select(*_COLUMNS).where(outbox.c.id == item_id)).one()
            return item_json(updated)

        return await self._store.write(retry)

    async def stats(self) -> OutboxStats:
        def stats(conn: Connection) -> OutboxStats:
            counts: dict[str, int] = dict(
                conn.execute(
                    sa.select(outbox.c.status, sa.func.count())
                    .where(outbox.c.status.in_((PENDING, DEAD)))
                    .group_by(outbox.c.status)
                ).all()
            )
            oldest = conn.execute(
                sa.select(outbox.c.created_at)
                .where(outbox.c.status == PENDING)
                .order_by(outbox.c.id)
                .limit(1)
            ).scalar()
            return OutboxStats(counts.get(PENDING, 0), counts.get(DEAD, 0), oldest)

        return await self._store.read(stats)
