"""Edits and deletions of stored contacts, recorded as events on their tickets.

:class:`ContactRevisions` implements :class:`normalizer.revision.Revisions`. An edit is the
event ``contact.edited`` ``{"contact_id", "text", "edited_ts"}``, a deletion
``contact.deleted`` ``{"contact_id", "deleted_ts"}``; the contact row (its first text, its raw
input, its attachments) is never changed, so the ticket JSON keeps the first text and the
events carry the later versions. The same revision again (a retry) is recorded once. The
ticket's ``updated_at`` moves; its status, group and outbox do not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.refs import format_ref
from normalizer.revision import ContactRevision, RevisionKind, RevisionResult
from router.clock import Clock, utcnow
from router.events import add_event
from router.schema import contacts, events, tickets
from router.store import Store

_STAMP = {RevisionKind.EDITED: "edited_ts", RevisionKind.DELETED: "deleted_ts"}


def record_revision(
    conn: Connection, revision: ContactRevision, prefix: str, now: datetime
) -> RevisionResult | None:
    """In the caller's transaction: the event on the revised contact's ticket, once."""
    found = conn.execute(
        sa.select(contacts.c.id, contacts.c.ticket_id)
        .where(
            contacts.c.channel == revision.channel.value,
            contacts.c.external_id.in_(revision.external_ids),
        )
        .order_by(contacts.c.id)
        .limit(1)
    ).first()
    if found is None:
        return None
    kind = f"contact.{revision.kind.value}"
    stamp = _STAMP[revision.kind]
    detail: dict[str, Any] = {"contact_id": found.id, stamp: revision.revised_at}
    if revision.kind is RevisionKind.EDITED:
        detail["text"] = revision.text or ""
    ref = format_ref(prefix, found.ticket_id)
    earlier = conn.execute(
        sa.select(events.c.detail).where(
            events.c.ticket_id == found.ticket_id, events.c.type == kind
        )
    ).scalars()
    if any(
        d.get("contact_id") == found.id and d.get(stamp) == revision.revised_at for d in earlier
    ):
        return RevisionResult(ref, found.id, duplicate=True)
    add_event(conn, found.ticket_id, kind, detail, now)
    conn.execute(sa.update(tickets).where(tickets.c.id == found.ticket_id).values(updated_at=now))
    return RevisionResult(ref, found.id, duplicate=False)


class ContactRevisions:
    """The router's side of :class:`normalizer.revision.Revisions`."""

    def __init__(self, store: Store, prefix: str, clock: Clock | None = None) -> None:
        self._store = store
        self._prefix = prefix
        self._now = clock or utcnow

    async def revise(self, revision: ContactRevision) -> RevisionResult | None:
        now = self._now()
        return await self._store.write(
            lambda conn: record_revision(conn, revision, self._prefix, now)
        )
