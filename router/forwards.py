"""Forwarding: which ticket events go to which ``[[forward]]`` target, and what each target
knows about the ticket.

Decisions (in the event's own transaction)
    :func:`queue_forwards` is called where a ticket event happens (``ticket.created`` and
    ``contact.added`` in ``Router.ingest``, ``ticket.escalated``, ``ticket.updated`` and
    ``ticket.resolved`` in ``TicketService``, ``ticket.resolved`` from a hook). For every target
    whose ``when`` filter matches the ticket as it is now -- or that holds the ticket already,
    so its record there keeps up -- it writes one outbox row of kind ``forward.<kind>``
    (``recipient`` = the target's name) and the ticket's ``forwards`` row if it has none. The
    payload names the event, not its wording: the connector reads the ticket when it sends.

Idempotency key
    ``forward:<target>:<ref>:<occasion>`` (``created``, ``contact.<id>``, ``escalated.<hex>``,
    ``status.<hex>``): the same on every retry of one event, unique per event.

Records
    ``forwards`` keeps the key the tool gave the ticket (``external_key``: ``HELPDESK-7``,
    ``INC0010001``; ``external_id``: its internal id). Its ``state`` in the ticket JSON comes
    from the target's outbox rows: ``dead`` if one is dead, else ``pending`` if one waits, else
    ``delivered``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.outbox_events import TICKET_CREATED
from normalizer.refs import format_ref
from router.blob_read import read_blob
from router.clock import Clock, utcnow
from router.conversation import add_participants
from router.outbox import DEAD, PENDING, enqueue
from router.schema import contacts, forwards, hook_deliveries, insert_ignore, outbox, tickets
from router.settings import ForwardRule, RouterSettings
from router.store import Store


def occasion(kind: str) -> str:
    """A fresh occasion for an event that has no id of its own (an escalation)."""
    return f"{kind}.{secrets.token_hex(6)}"


def matches(rule: ForwardRule, ticket: Any) -> bool:
    """Every condition the rule gives holds for ``ticket`` (a ``tickets`` row)."""
    wanted = (
        (rule.group, ticket.group_name),
        (rule.channel, ticket.channel),
        (rule.category, ticket.category),
        (rule.ticket_kind, ticket.kind),
        (rule.priority, ticket.priority),
    )
    return all(want is None or want == have for want, have in wanted)


def queue_forwards(
    conn: Connection,
    settings: RouterSettings,
    ticket_id: int,
    event: str,
    now: datetime,
    *,
    occasion: str,
    contact_id: int | None = None,
    sender: str | None = None,
    origin: str | None = None,
) -> list[str]:
    """Queue ``event`` for every target that should hear it; returns their names.

    ``sender`` (an inbound contact's address) is never sent back to an email target at that
    address; ``origin`` (the target a hook came from) does not hear its own news again.
    """
    if not settings.forwards:
        return []
    row = conn.execute(
        sa.select(
            tickets.c.group_name,
            tickets.c.channel,
            tickets.c.category,
            tickets.c.kind,
            tickets.c.priority,
        ).where(tickets.c.id == ticket_id)
    ).first()
    if row is None:
        return []
    holding = set(
        conn.execute(sa.select(forwards.c.target).where(forwards.c.ticket_id == ticket_id))
        .scalars()
        .all()
    )
    ref = format_ref(settings.ticket_prefix, ticket_id)
    queued: list[str] = []
    for rule in settings.forwards:
        if rule.name == origin:
            continue
        if sender is not None and rule.address is not None and sender.casefold() == rule.address:
            continue  # the tool's own answer: it has it already
        if not (matches(rule, row) or (event != TICKET_CREATED and rule.name in holding)):
            continue
        payload = {
            "target": rule.name,
            "event": event,
            "ticket_ref": ref,
            "ticket_id": ticket_id,
            "contact_id": contact_id,
        }
        key = f"forward:{rule.name}:{ref}:{occasion}"
        enqueue(
            conn,
            f"forward.{rule.kind}",
            payload,
            key=key,
            now=now,
            ticket_id=ticket_id,
            recipient=rule.name,
        )
        if rule.address is not None:  # the tool's replies by mail may join the ticket
            add_participants(conn, ticket_id, [rule.address])
        if rule.name not in holding:
            conn.execute(
                insert_ignore(conn, forwards, "ticket_id", "target"),
                {
                    "ticket_id": ticket_id,
                    "target": rule.name,
                    "kind": rule.kind,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        queued.append(rule.name)
    return queued


def forwards_json(conn: Connection, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket JSON's ``forwards``: target, kind, external key, state, last error."""
    records = conn.execute(
        sa.select(
            forwards.c.target, forwards.c.kind, forwards.c.external_key, forwards.c.last_error
        )
        .where(forwards.c.ticket_id == ticket_id)
        .order_by(forwards.c.id)
    ).all()
    if not records:
        return []
    rows = conn.execute(
        sa.select(outbox.c.recipient, outbox.c.status, outbox.c.last_error)
        .where(outbox.c.ticket_id == ticket_id, outbox.c.kind.like("forward.%"))
        .order_by(outbox.c.id)
    ).all()
    result = []
    for record in records:
        mine = [r for r in rows if r.recipient == record.target]
        dead = [r for r in mine if r.status == DEAD]
        state, error = "delivered", None
        if dead:
            state, error = "dead", dead[-1].last_error
        elif any(r.status == PENDING for r in mine):
            state = "pending"
            error = next((r.last_error for r in reversed(mine) if r.last_error), None)
        result.append(
            {
                "target": record.target,
                "kind": record.kind,
                "external_key": record.external_key,
                "state": state,
                "last_error": error,
            }
        )
    return result


@dataclass(frozen=True, slots=True)
class ForwardRecord:
    """What a connector needs to know of the ticket's record in its tool."""

    external_key: str | None
    external_id: str | None


class ForwardRecords:
    """The connectors' side of ``forwards``: read the record before a send, keep the key the
    tool answered with after it (and the ids of comments we wrote, so their hooks are ours)."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._now = clock or utcnow

    async def get(self, ticket_id: int, target: str) -> ForwardRecord:
        stmt = sa.select(forwards.c.external_key, forwards.c.external_id).where(
            forwards.c.ticket_id == ticket_id, forwards.c.target == target
        )
        row = await self._store.read(lambda c: c.execute(stmt).first())
        return (
            ForwardRecord(row.external_key, row.external_id) if row else ForwardRecord(None, None)
        )

    async def original(self, contact_id: int) -> bytes | None:
        """The contact's raw message as it came in (an email target forwards it whole)."""
        stmt = sa.select(contacts.c.raw).where(contacts.c.id == contact_id)
        return await self._store.read(lambda c: read_blob(c, stmt))

    async def delivered(
        self,
        ticket_id: int,
        target: str,
        record: ForwardRecord,
        own_ids: tuple[str, ...] = (),
    ) -> None:
        now = self._now()

        def write(conn: Connection) -> None:
            conn.execute(
                sa.update(forwards)
                .where(forwards.c.ticket_id == ticket_id, forwards.c.target == target)
                .values(
                    external_key=record.external_key,
                    external_id=record.external_id,
                    last_error=None,
                    updated_at=now,
                )
            )
            if own_ids:
                conn.execute(
                    insert_ignore(conn, hook_deliveries, "target", "delivery_key"),
                    [
                        {
                            "target": target,
                            "delivery_key": key[:200],
                            "ticket_id": ticket_id,
                            "received_at": now,
                        }
                        for key in own_ids
                    ],
                )

        await self._store.write(write)

    async def failed(self, ticket_id: int, target: str, error: str) -> None:
        stmt = (
            sa.update(forwards)
            .where(forwards.c.ticket_id == ticket_id, forwards.c.target == target)
            .values(last_error=error[:2000], updated_at=self._now())
        )
        await self._store.write(lambda c: c.execute(stmt))
