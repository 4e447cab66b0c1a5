"""The way back: what a forward target's tool tells us about a ticket, applied in one
transaction.

A hook (``gateway.hooks`` verified its signature and read it into a :class:`HookEvent`) is
applied once: its delivery key, and any further keys it carries (a Jira comment's id), go into
``hook_deliveries`` with its effect, so a replay of the same delivery -- or the hook for a
comment we wrote ourselves -- changes nothing.

Effects
    ``comment.public``: the text goes to the requester on their last channel
    (``router.replies.queue_reply``: an email reply threaded into their conversation, a Slack
    thread message, an SMS). ``comment.internal``: recorded on the ticket (event
    ``forward.comment``), never sent. ``ticket.resolved``: the ticket is resolved, the
    requester is told, and the other targets holding the ticket hear ``ticket.resolved``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer import outbox_events
from normalizer.hooks import HOOK_TYPES, HookEvent
from normalizer.intake import ContactRejectedError
from normalizer.refs import format_ref, parse_ref
from router import replies
from router.clock import Clock, utcnow
from router.events import add_event
from router.forwards import queue_forwards
from router.replies import Said
from router.schema import forwards, hook_deliveries, insert_ignore, tickets
from router.settings import RouterSettings
from router.store import Store


class HookTicketUnknown(LookupError):
    """The hook names no ticket this target holds."""


@dataclass(frozen=True, slots=True)
class HookOutcome:
    ticket_ref: str
    applied: bool  # False: a replay, or our own comment coming back


class HookInbox:
    def __init__(self, store: Store, settings: RouterSettings, clock: Clock | None = None) -> None:
        self._store = store
        self.settings = settings
        self._now = clock or utcnow

    async def apply(self, target: str, event: HookEvent) -> HookOutcome:
        if event.type not in HOOK_TYPES:
            raise ContactRejectedError(f"type must be one of {HOOK_TYPES}", field="type")
        now = self._now()
        return await self._store.write(lambda conn: self._apply(conn, target, event, now))

    def _ticket_id(self, conn: Connection, target: str, event: HookEvent) -> int:
        where = [forwards.c.target == target]
        if event.ref is not None:
            ticket_id = parse_ref(self.settings.ticket_prefix, event.ref)
            if ticket_id is None:
                raise HookTicketUnknown(event.ref)
            where.append(forwards.c.ticket_id == ticket_id)
        elif event.external_key is not None:
            where.append(forwards.c.external_key == event.external_key)
        else:
            raise HookTicketUnknown("the hook names no ticket")
        found = conn.execute(sa.select(forwards.c.ticket_id).where(*where).limit(1)).scalar()
        if found is None:
            raise HookTicketUnknown(event.ref or event.external_key or "")
        return int(found)

    def _apply(self, conn: Connection, target: str, event: HookEvent, now: datetime) -> HookOutcome:
        ticket_id = self._ticket_id(conn, target, event)
        ref = format_ref(self.settings.ticket_prefix, ticket_id)
        keys = [k[:200] for k in (event.delivery_key, *event.also_seen) if k]
        seen = conn.execute(
            sa.select(sa.func.count())
            .select_from(hook_deliveries)
            .where(hook_deliveries.c.target == target, hook_deliveries.c.delivery_key.in_(keys))
        ).scalar_one()
        if seen:
            return HookOutcome(ref, applied=False)
        conn.execute(
            insert_ignore(conn, hook_deliveries, "target", "delivery_key"),
            [
                {"target": target, "delivery_key": k, "ticket_id": ticket_id, "received_at": now}
                for k in keys
            ],
        )
        detail: dict[str, Any] = {"target": target, "author": event.author}
        if event.type == "ticket.resolved":
            self._resolve(conn, ticket_id, ref, target, event, now, detail)
        else:
            public = event.type == "comment.public"
            detail.update(public=public, text=event.text)
            if public:
                said = Said.reply(event.text)
                detail["sent"] = replies.tell_requester(
                    conn, self.settings, ticket_id, ref, said, now
                )
            add_event(conn, ticket_id, "forward.comment", detail, now)
        return HookOutcome(ref, applied=True)

    def _resolve(
        self,
        conn: Connection,
        ticket_id: int,
        ref: str,
        target: str,
        event: HookEvent,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        status = conn.execute(sa.select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar()
        if status in ("resolved", "closed"):
            add_event(conn, ticket_id, "forward.resolved", {**detail, "changed": False}, now)
            return
        conn.execute(
            sa.update(tickets)
            .where(tickets.c.id == ticket_id)
            .values(status="resolved", updated_at=now, closed_at=now)
        )
        note = f"resolved in {target}" + (f": {event.text}" if event.text else "")
        add_event(
            conn, ticket_id, "status.changed", {"from": status, "to": "resolved", "note": note}, now
        )
        said = Said.status_change("resolved", event.text)
        detail["sent"] = replies.tell_requester(conn, self.settings, ticket_id, ref, said, now)
        add_event(conn, ticket_id, "forward.resolved", detail, now)
        queue_forwards(
            conn,
            self.settings,
            ticket_id,
            outbox_events.TICKET_RESOLVED,
            now,
            occasion=f"resolved.{event.delivery_key}",
            origin=target,
        )
