"""Each phone call's progress through the IVR, in the database (``call_progress``).

:class:`CallJournalStore` implements :class:`normalizer.calls.CallJournal` for the gateway: the
menu steps write the caller's choice as they answer, and the call-status step -- on whichever
instance the load balancer sent it to -- reads it to word a call-back contact. Writes go
through the store's writer (a row per call, upserted); every write of a choice also deletes
rows older than :data:`MAX_AGE`, through the index on ``updated_at``, so the table holds about a
day of calls. A row stays after the call ended: a status callback Twilio sends again finds the
call finished.

``wait_finished`` polls the row (every :data:`POLL_SECONDS`; why polling, there): it runs only
for a caller who hung up while recording, for at most the IVR's grace of a couple of seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.calls import CallProgress
from router.clock import Clock, utcnow
from router.schema import call_progress, upsert
from router.store import Store

MAX_AGE = timedelta(hours=24)
# How often wait_finished reads the row. Polling on purpose: the finish may be written by
# another instance, and the database is all the instances share. The one push channel there,
# PostgreSQL's LISTEN/NOTIFY, would need a listening connection outside the store's thread pools
# and nothing like it exists on SQLite; a wait happens only for a caller who hung up while
# recording and lasts at most the IVR's grace (2 s), so it costs some 20 primary-key reads.
POLL_SECONDS: Final = 0.1

_COLUMNS = ("path", "offered_ref", "after_hours", "recording")
_GET = sa.select(
    call_progress.c.path,
    call_progress.c.offered_ref,
    call_progress.c.after_hours,
    call_progress.c.recording,
    call_progress.c.finished,
).where(call_progress.c.call_sid == sa.bindparam("sid"))
_EXPIRE = sa.delete(call_progress).where(
    call_progress.c.updated_at < sa.bindparam("before", type_=call_progress.c.updated_at.type)
)


class CallJournalStore:
    """:class:`normalizer.calls.CallJournal` on the ticket store, shared by every instance."""

    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self._store = store
        self._now = clock

    async def chose(self, call_sid: str, progress: CallProgress) -> None:
        now = self._now()
        row = {
            "call_sid": call_sid,
            "path": progress.path,
            "offered_ref": progress.offered_ref,
            "after_hours": progress.after_hours,
            "recording": progress.recording,
            "finished": False,
            "updated_at": now,
        }

        def write(conn: Connection) -> None:
            conn.execute(upsert(conn, call_progress, ("call_sid",), (*_COLUMNS, "updated_at")), row)
            conn.execute(_EXPIRE, {"before": now - MAX_AGE})

        await self._store.write(write)

    async def finish(self, call_sid: str) -> None:
        row = {
            "call_sid": call_sid,
            "after_hours": False,
            "recording": False,
            "finished": True,
            "updated_at": self._now(),
        }

        def write(conn: Connection) -> None:
            stmt = upsert(conn, call_progress, ("call_sid",), ("finished", "updated_at"))
            conn.execute(stmt, row)

        await self._store.write(write)

    async def get(self, call_sid: str) -> CallProgress | None:
        def read(conn: Connection) -> CallProgress | None:
            found = conn.execute(_GET, {"sid": call_sid}).first()
            if found is None:
                return None
            path, offered, after_hours, recording, finished = found
            return CallProgress(path, offered, bool(after_hours), bool(recording), bool(finished))

        return await self._store.read(read)

    async def wait_finished(self, call_sid: str, timeout: float) -> bool:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            progress = await self.get(call_sid)
            if progress is not None and progress.finished:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(POLL_SECONDS, left))
