"""Dashboard sessions ended by logout, in the database (``revoked_sessions``).

A session is a signed cookie (``gateway.dashboard.session``); logging out must end it on every
instance, not only on the one that took the logout. A revoked session id is kept until its
cookie would have expired anyway; each revocation deletes the rows past that point.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.clock import Clock, utcnow
from router.schema import insert_ignore, revoked_sessions
from router.store import Store

_IS_REVOKED = sa.select(sa.literal(1)).where(revoked_sessions.c.sid == sa.bindparam("sid"))
_EXPIRE = sa.delete(revoked_sessions).where(
    revoked_sessions.c.expires_at < sa.bindparam("now", type_=revoked_sessions.c.expires_at.type)
)


class RevokedSessions:
    """Which session ids were logged out, shared by every gateway on the database."""

    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self._store = store
        self._now = clock

    async def revoke(self, sid: str, until: datetime) -> None:
        now = self._now()

        def write(conn: Connection) -> None:
            conn.execute(_EXPIRE, {"now": now})
            stmt = insert_ignore(conn, revoked_sessions, "sid")
            conn.execute(stmt, {"sid": sid, "expires_at": until})

        await self._store.write(write)

    async def is_revoked(self, sid: str) -> bool:
        found = await self._store.read(lambda conn: conn.execute(_IS_REVOKED, {"sid": sid}).first())
        return found is not None
