"""The outbox: everything spoc must send, written in the routing transaction, sent later.

Rows are claimed with a lease (``locked_until``) so a crashed dispatcher's rows come back; on
PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so several instances never claim the same row. Each
row has a unique idempotency key: the same logical message is never queued twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.clock import Clock, utcnow
from router.schema import insert_ignore, outbox
from router.store import Store

PENDING, DONE, DEAD = "pending", "done", "dead"
MAX_KEY_CHARS: int = cast(sa.String, outbox.c.idempotency_key.type).length or 200


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one
    idempotency_key: str
    ticket_id: int | None


def enqueue(
    conn: Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str,
    now: datetime,
    ticket_id: int | None = None,
    recipient: str | None = None,
) -> bool:
    """Queue one message; False when a row with this idempotency key exists already.

    A key longer than the column (an ack's key holds the sender's address, up to 320
    characters) is stored as its sha256: still one key per message, and PostgreSQL, which
    enforces the length, never refuses it.
    """
    if len(key) > MAX_KEY_CHARS:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT through SQLAlchemy.
    inserted = conn.execute(
        insert_ignore(conn, outbox, "idempotency_key").returning(outbox.c.id),
        {
            "kind": kind,
            "ticket_id": ticket_id,
            "recipient": recipient,
            "idempotency_key": key,
            "payload": payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    ).first()
    return inserted is not None


class Outbox:
    """What the gateway's dispatcher uses to take rows out and report back."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._now = clock or utcnow

    async def claim(self, limit: int = 20, lease_seconds: float = 60.0) -> list[OutboxItem]:
        now = self._now()

        def claim(conn: Connection) -> list[OutboxItem]:
            due = (
                sa.select(
                    outbox.c.id,
                    outbox.c.kind,
                    outbox.c.payload,
                    outbox.c.attempts,
                    outbox.c.idempotency_key,
                    outbox.c.ticket_id,
                )
                .where(
                    outbox.c.status == PENDING,
                    outbox.c.next_attempt_at <= now,
                    sa.or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
                )
                .order_by(outbox.c.id)
                .limit(limit)
            )
            if self._store.is_postgres:
                due = due.with_for_update(skip_locked=True)
            rows = conn.execute(due).all()
            if not rows:
                return []
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_([r.id for r in rows]))
                .values(
                    locked_until=now + timedelta(seconds=lease_seconds),
                    attempts=outbox.c.attempts + 1,
                )
            )
            return [
                OutboxItem(
                    r.id, r.kind, dict(r.payload), r.attempts + 1, r.idempotency_key, r.ticket_id
                )
                for r in rows
            ]

        return await self._store.write(claim)

    async def done(self, item_id: int) -> None:
        now = self._now()
        await self._store.write(
            lambda c: c.execute(
                sa.update(outbox)
                .where(outbox.c.id == item_id)
                .values(status=DONE, done_at=now, locked_until=None, last_error=None)
            )
        )

    async def failed(self, item_id: int, error: str, retry_in_seconds: float | None) -> None:
        """Record a failed attempt: retry after ``retry_in_seconds``, or dead when None."""
        now = self._now()
        values: dict[str, Any] = {"locked_until": None, "last_error": error[:2000]}
        if retry_in_seconds is None:
            values.update(status=DEAD, done_at=now)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=retry_in_seconds)
        await self._store.write(
            lambda c: c.execute(sa.update(outbox).where(outbox.c.id == item_id).values(**values))
        )

    async def depth(self) -> int:
        return await self._store.read(
            lambda c: c.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == PENDING)
            ).scalar_one()
        )
