"""The outbox: everything spoc must send, written in the routing transaction, sent later.

Rows are claimed with a lease (``locked_until``) so a killed dispatcher's rows come back once
it runs out; on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so several instances share the work
and never claim the same row. Each claim writes a fresh ``claim_token``: ``done`` and
``failed`` change the row only while it still holds that token, so a dispatcher whose send
outlived its lease (and whose row another dispatcher claimed meanwhile) cannot record the
outcome a second time. Each row has a unique idempotency key: the same logical message is never
queued twice, and transports get the key with every attempt.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from router import prepared
from router.clock import Clock, utcnow
from router.schema import insert_ignore, outbox
from router.store import Store

PENDING, DONE, DEAD = "pending", "done", "dead"
# Set in the connection's ``info`` by :func:`enqueue` when it queued a row: the router tells the
# gateway whether a contact's transaction queued anything, so the dispatcher is woken only then.
QUEUED = "spoc.outbox.queued"
MAX_KEY_CHARS: int = cast(sa.String, outbox.c.idempotency_key.type).length or 200


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one
    idempotency_key: str
    ticket_id: int | None
    claim_token: str  # this claim's fence: done/failed change the row only with it
    queued_at: datetime  # created, or requeued by an operator: where the lifetime starts
    recipient: str | None

    @property
    def target(self) -> str:
        return delivery_target(self.recipient, self.payload)


def delivery_target(recipient: str | None, payload: dict[str, Any]) -> str:
    """Whom a delivery is for, for logs and listings: the recipient, else the payload's
    address or Slack channel."""
    for value in (recipient, payload.get("to"), payload.get("channel")):
        if isinstance(value, str) and value:
            return value
    return "-"


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
    inserted = prepared.first(
        conn,
        _returning_id(insert_ignore(conn, outbox, "idempotency_key")),
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
    )
    if inserted is None:
        return False
    conn.info[QUEUED] = True
    return True


def queued_since_asked(conn: Connection) -> bool:
    """Whether :func:`enqueue` queued a row on ``conn`` since the last time this was asked."""
    return bool(conn.info.pop(QUEUED, False))


@functools.cache  # built once per dialect: every acknowledgement and forward goes through it
def _returning_id(insert: Insert) -> Insert:
    return insert.returning(outbox.c.id)


def claim_due(
    conn: Connection, *, now: datetime, limit: int, lease_seconds: float, skip_locked: bool
) -> list[OutboxItem]:
    """Claim up to ``limit`` due rows in ``conn``'s transaction, longest due first.

    Due: pending, ``next_attempt_at`` reached, and not leased (or the lease ran out: its
    dispatcher died or hangs). ``skip_locked`` (PostgreSQL) passes over rows another
    transaction is claiming right now instead of waiting for it or claiming them too.
    """
    rows = prepared.rows(conn, _due(limit, skip_locked), {"now": now})
    if not rows:
        return []
    token = secrets.token_hex(16)
    claimed = {f"id{n}": row[0] for n, row in enumerate(rows)}
    prepared.run(
        conn,
        _claim(len(rows)),
        {**claimed, "locked_until": now + timedelta(seconds=lease_seconds), "claim_token": token},
    )
    return [_item(row, token) for row in rows]


def _item(row: tuple[Any, ...], token: str) -> OutboxItem:
    """A claimed row (``_ITEM_COLUMNS``) as the dispatcher gets it."""
    row_id, kind, payload, attempts, key, ticket_id, created_at, requeued_at, recipient = row
    return OutboxItem(
        row_id,
        kind,
        dict(payload),
        attempts + 1,
        key,
        ticket_id,
        token,
        requeued_at or created_at,
        recipient,
    )


_ITEM_COLUMNS = (
    outbox.c.id,
    outbox.c.kind,
    outbox.c.payload,
    outbox.c.attempts,
    outbox.c.idempotency_key,
    outbox.c.ticket_id,
    outbox.c.created_at,
    outbox.c.requeued_at,
    outbox.c.recipient,
)


# Built once per limit (and per dialect's locking): the dispatcher claims after every contact
# that may have queued something, mostly finding nothing due.
@functools.cache
def _due(limit: int, skip_locked: bool) -> sa.Select[Any]:
    now = sa.bindparam("now", type_=outbox.c.next_attempt_at.type)
    due = (
        sa.select(*_ITEM_COLUMNS)
        .where(
            outbox.c.status == PENDING,
            outbox.c.next_attempt_at <= now,
            sa.or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)  # the (status, next_attempt_at) index
        .limit(limit)
    )
    return due.with_for_update(skip_locked=True) if skip_locked else due


@functools.cache  # per number of rows claimed (at most the dispatcher's batch size)
def _claim(count: int) -> sa.Update:
    return (
        sa.update(outbox)
        .where(outbox.c.id.in_([sa.bindparam(f"id{n}") for n in range(count)]))
        .values(attempts=outbox.c.attempts + 1)
    )


# The outcome of a claimed row, fenced by its token; the columns set are the parameters given
# (done: done_at and last_error; failed: last_error and status or next_attempt_at).
_SETTLE = (
    sa.update(outbox)
    .where(
        outbox.c.id == sa.bindparam("item_id"),
        outbox.c.claim_token == sa.bindparam("item_token"),
        outbox.c.status == PENDING,
    )
    .returning(outbox.c.id)
)


class Outbox:
    """What the gateway's dispatcher uses to take rows out and report back."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._now = clock or utcnow

    async def claim(self, limit: int = 20, lease_seconds: float = 60.0) -> list[OutboxItem]:
        now = self._now()
        skip_locked = self._store.is_postgres
        return await self._store.write(
            lambda conn: claim_due(
                conn, now=now, limit=limit, lease_seconds=lease_seconds, skip_locked=skip_locked
            )
        )

    async def done(self, item: OutboxItem) -> bool:
        """Record ``item`` delivered. False (nothing changed) when its claim was lost: the
        lease ran out and another dispatcher holds the row now, or it was recorded already."""
        now = self._now()
        return await self._settle(item, status=DONE, done_at=now, last_error=None)

    async def failed(self, item: OutboxItem, error: str, retry_at: datetime | None) -> bool:
        """Record a failed attempt: due again at ``retry_at``, or dead when None.

        False (nothing changed) when the claim was lost, as for :meth:`done`.
        """
        values: dict[str, Any] = {"last_error": error[:2000]}
        if retry_at is None:
            values.update(status=DEAD, done_at=self._now())
        else:
            values["next_attempt_at"] = retry_at
        return await self._settle(item, **values)

    async def _settle(self, item: OutboxItem, **values: Any) -> bool:
        params = {
            **values,
            "locked_until": None,
            "claim_token": None,
            "item_id": item.id,
            "item_token": item.claim_token,
        }
        return await self._store.write(lambda c: prepared.first(c, _SETTLE, params) is not None)

    async def depth(self) -> int:
        return await self._store.read(
            lambda c: c.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == PENDING)
            ).scalar_one()
        )
