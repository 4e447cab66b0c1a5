"""Moving-window rate limits counted in the database (``rate_hits``), alike on every instance.

One row per counted event: ``(scope, SHA-256 of the key, at)``. A check counts the key's rows
in the window (the index on ``(scope, key_hash, at)``); the oldest of them says when one more
is allowed. Keys are stored hashed, so the table holds no client or email address. Every
:meth:`RateLimits.hit` also deletes the scope's rows that left the window (through the index on
``at``), so the table holds one window of events.

On PostgreSQL a hit takes a transaction-scoped advisory lock on its ``(scope, key)`` before it
counts (``router.thread_lock.lock_names``): two instances counting the same key at once cannot
both take the last place. SQLite's writer is serial already.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.clock import Clock, utcnow
from router.schema import rate_hits
from router.store import Store
from router.thread_lock import lock_names

_AT = rate_hits.c.at.type
_IN_WINDOW = sa.select(sa.func.count(), sa.func.min(rate_hits.c.at)).where(
    rate_hits.c.scope == sa.bindparam("scope"),
    rate_hits.c.key_hash == sa.bindparam("key_hash"),
    rate_hits.c.at > sa.bindparam("since", type_=_AT),
)
_NEW_HIT = sa.insert(rate_hits)  # built once: every web form report and login counts through it
_EXPIRE = sa.delete(rate_hits).where(
    rate_hits.c.at <= sa.bindparam("since", type_=_AT), rate_hits.c.scope == sa.bindparam("scope")
)


def key_hash(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\0{key}".encode("utf-8", "replace")).hexdigest()


class RateLimits:
    """:class:`normalizer.rate_limits.RateLimiter` on the ticket store."""

    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self._store = store
        self._now = clock

    async def hit(self, scope: str, key: str, limit: int, window_seconds: float) -> float | None:
        now, digest = self._now(), key_hash(scope, key)
        since = now - timedelta(seconds=window_seconds)

        def write(conn: Connection) -> float | None:
            lock_names(conn, [f"rate:{digest}"])  # PostgreSQL; SQLite's writer is serial
            conn.execute(_EXPIRE, {"since": since, "scope": scope})
            retry = _retry_after(conn, scope, digest, limit, since, window_seconds, now)
            if retry is None:
                conn.execute(_NEW_HIT, {"scope": scope, "key_hash": digest, "at": now})
            return retry

        return await self._store.write(write)

    async def wait(self, scope: str, key: str, limit: int, window_seconds: float) -> float | None:
        now, digest = self._now(), key_hash(scope, key)
        since = now - timedelta(seconds=window_seconds)
        return await self._store.read(
            lambda conn: _retry_after(conn, scope, digest, limit, since, window_seconds, now)
        )


def _retry_after(
    conn: Connection,
    scope: str,
    digest: str,
    limit: int,
    since: datetime,
    window_seconds: float,
    now: datetime,
) -> float | None:
    row = conn.execute(_IN_WINDOW, {"scope": scope, "key_hash": digest, "since": since}).one()
    count, oldest = int(row[0]), row[1]
    if count < limit or not isinstance(oldest, datetime):
        return None
    return max(0.0, (oldest - now).total_seconds() + window_seconds)
