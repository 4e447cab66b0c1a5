"""Ticket events: the audit trail every decision writes, shown in the ticket's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router import prepared
from router.schema import events

_NEW_EVENTS = sa.insert(events)  # built once: every contact writes its events through it


def add_event(
    conn: Connection, ticket_id: int, type_: str, detail: dict[str, Any], now: datetime
) -> None:
    conn.execute(sa.insert(events).values(ticket_id=ticket_id, at=now, type=type_, detail=detail))


def add_events(
    conn: Connection, rows: list[tuple[int, str, dict[str, Any]]], now: datetime
) -> None:
    """Several events in one statement: ``(ticket_id, type, detail)`` each."""
    if rows:
        prepared.run(
            conn,
            _NEW_EVENTS,
            [{"ticket_id": t, "at": now, "type": k, "detail": d} for t, k, d in rows],
        )
