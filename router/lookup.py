"""Read-only questions channels ask about tickets, answered on the store's reader.

The Twilio IVR asks two: "does this caller have an open ticket from the last N hours?" (to offer
"press 9 to add to SD-42") and "does this call already have a ticket?" (so a hang-up after the
recording does not make a call-back contact). Slack asks one: "is this thread a ticket this user
takes part in?" (so colleagues chatting in a thread are not added to the ticket). The gateway
hands these objects to the channels; channels never import ``router``, they see them through
protocols of their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.refs import format_ref
from router.clock import Clock, utcnow
from router.conversation import CLOSED_STATUSES
from router.schema import identities, message_ids, participants, tickets
from router.store import Store

# Built once: constructing a Core statement per call costs several times running it (the
# IVR asks on every incoming call). Values arrive as bind parameters.
_RECENT_OPEN_TICKET = (
    sa.select(tickets.c.id)
    .join(identities, identities.c.requester_id == tickets.c.requester_id)
    .where(
        identities.c.kind == "phone",
        identities.c.value == sa.bindparam("phone"),
        *(tickets.c.status != status for status in CLOSED_STATUSES),
        tickets.c.updated_at >= sa.bindparam("since", type_=tickets.c.updated_at.type),
    )
    .order_by(tickets.c.updated_at.desc(), tickets.c.id.desc())
    .limit(1)
)
_THREAD_OF_PARTICIPANT = (
    sa.select(message_ids.c.ticket_id)
    .join(participants, participants.c.ticket_id == message_ids.c.ticket_id)
    .where(
        message_ids.c.message_id == sa.bindparam("key"),
        participants.c.address == sa.bindparam("address"),
    )
    .limit(1)
)
_CALL_TICKET = sa.select(message_ids.c.ticket_id).where(
    message_ids.c.message_id == sa.bindparam("key")
)


def recent_open_ticket(conn: Connection, phone: str, since: datetime) -> int | None:
    """The newest open ticket of the requester who owns ``phone``, active since ``since``."""
    found = conn.execute(_RECENT_OPEN_TICKET, {"phone": phone, "since": since}).scalar()
    return int(found) if found is not None else None


def call_ticket(conn: Connection, call_sid: str) -> int | None:
    """The ticket a call's contacts went to (``call:<CallSid>``), if any."""
    found = conn.execute(_CALL_TICKET, {"key": f"call:{call_sid}"}).scalar()
    return int(found) if found is not None else None


class PhoneLookup:
    """The IVR's lookups as async methods returning refs (``SD-42``)."""

    def __init__(self, store: Store, prefix: str, clock: Clock | None = None) -> None:
        self._store = store
        self._prefix = prefix
        self._now = clock or utcnow

    async def open_ticket_for_phone(self, phone: str, within_seconds: float) -> str | None:
        since = self._now() - timedelta(seconds=within_seconds)
        found = await self._store.read(lambda conn: recent_open_ticket(conn, phone, since))
        return format_ref(self._prefix, found) if found is not None else None

    async def ticket_for_call(self, call_sid: str) -> str | None:
        found = await self._store.read(lambda conn: call_ticket(conn, call_sid))
        return format_ref(self._prefix, found) if found is not None else None


class ChatLookup:
    """Slack's lookup: is a chat thread the thread of a ticket this user takes part in?"""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def known_thread(self, thread_key: str, user_id: str) -> bool:
        params = {"key": f"chat:{thread_key}", "address": user_id}
        return await self._store.read(
            lambda conn: conn.execute(_THREAD_OF_PARTICIPANT, params).first() is not None
        )
