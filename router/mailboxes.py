"""IMAP pollers' state in the database: checkpoints, failure counts, and the one-poller-per-
mailbox lock.

Checkpoints (:class:`MailboxCheckpoints`): one row per ``(mailbox, folder)`` in
``imap_checkpoints`` with the folder's UIDVALIDITY and the last UID taken in, written through
the store's writer (so a checkpoint commits like a contact does). Failed attempts at a message
are counted in ``imap_failures``, so a message that keeps failing reaches ``max_failures`` and
``failed_folder`` even when the mailbox passes from one gateway to another between attempts;
saving a checkpoint deletes the rows of the messages it passed (or of an old UIDVALIDITY).

The lock (:func:`poller_lock`): on PostgreSQL a session-level advisory lock
(``pg_try_advisory_lock``) on a connection of its own, held while the poller runs; another
gateway on the same database gets False and waits. The lock goes when the process or its
connection does, so a gateway killed with -9 hands the mailbox on. On SQLite (one gateway
process per database file) an exclusive ``flock`` on ``<database>.imap-<name>.lock`` keeps a
second process on the same file from polling too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.mailbox import Checkpoint
from router.clock import Clock, utcnow
from router.schema import imap_checkpoints, imap_failures, upsert, upsert_counting
from router.store import Store, engine_url, sqlite_path

log = logging.getLogger(__name__)

_LOAD = sa.select(imap_checkpoints.c.uidvalidity, imap_checkpoints.c.last_uid).where(
    imap_checkpoints.c.mailbox == sa.bindparam("mailbox"),
    imap_checkpoints.c.folder == sa.bindparam("folder"),
)
_PASSED = sa.delete(imap_failures).where(
    imap_failures.c.mailbox == sa.bindparam("mailbox"),
    imap_failures.c.folder == sa.bindparam("folder"),
    sa.or_(
        imap_failures.c.uidvalidity != sa.bindparam("uidvalidity"),
        imap_failures.c.uid <= sa.bindparam("last_uid"),
    ),
)


class MailboxCheckpoints:
    """:class:`normalizer.mailbox.Checkpoints` on the ticket store."""

    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self._store = store
        self._clock = clock

    async def load(self, mailbox: str, folder: str) -> Checkpoint | None:
        def read(conn: Connection) -> Checkpoint | None:
            row = conn.execute(_LOAD, {"mailbox": mailbox, "folder": folder}).first()
            return None if row is None else Checkpoint(int(row[0]), int(row[1]))

        return await self._store.read(read)

    async def save(self, mailbox: str, folder: str, checkpoint: Checkpoint) -> None:
        row = {
            "mailbox": mailbox,
            "folder": folder,
            "uidvalidity": checkpoint.uidvalidity,
            "last_uid": checkpoint.last_uid,
            "updated_at": self._clock(),
        }

        def write(conn: Connection) -> None:
            stmt = upsert(
                conn,
                imap_checkpoints,
                ("mailbox", "folder"),
                ("uidvalidity", "last_uid", "updated_at"),
            )
            conn.execute(stmt, row)
            conn.execute(_PASSED, row)

        await self._store.write(write)

    async def count_failure(self, mailbox: str, folder: str, uidvalidity: int, uid: int) -> int:
        row = {
            "mailbox": mailbox,
            "folder": folder,
            "uidvalidity": uidvalidity,
            "uid": uid,
            "attempts": 1,
            "updated_at": self._clock(),
        }

        def write(conn: Connection) -> int:
            keys = ("mailbox", "folder", "uidvalidity", "uid")
            stmt = upsert_counting(conn, imap_failures, keys, "attempts", ("updated_at",))
            return int(conn.execute(stmt.returning(imap_failures.c.attempts), row).scalar_one())

        return await self._store.write(write)


def advisory_key(mailbox: str) -> int:
    """A stable signed 64-bit advisory lock key for ``mailbox`` (the same in every process)."""
    digest = hashlib.sha256(f"spoc imap poller {mailbox}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """PostgreSQL session advisory lock on a dedicated autocommit connection."""

    def __init__(self, url: str, mailbox: str) -> None:
        self._engine = sa.create_engine(
            engine_url(url), poolclass=sa.NullPool, connect_args={"connect_timeout": 5}
        )
        self._key = advisory_key(mailbox)
        self._mailbox = mailbox
        self._conn: Connection | None = None

    async def acquire(self) -> bool:
        return await asyncio.to_thread(self._acquire)

    async def held(self) -> bool:
        return await asyncio.to_thread(self._held)

    async def release(self) -> None:
        await asyncio.to_thread(self._release)

    def _acquire(self) -> bool:
        if self._conn is not None:
            return self._held()  # taken already: a second pg_try_advisory_lock would stack
        try:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = self._conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
        except sa.exc.DBAPIError as exc:
            log.warning("IMAP %s: cannot take the poller lock: %s", self._mailbox, exc.orig)
            self._drop()
            return False
        if not got:
            self._drop()  # keep no idle connection while someone else polls
        return bool(got)

    def _held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            log.warning("IMAP %s: the poller lock's connection is gone", self._mailbox)
            self._drop()
            return False
        return True

    def _release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.close()
            self._conn = None


class FileLock:
    """An exclusive ``flock`` on a file beside the SQLite database; None path: always held."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._path is None:
            self._fd = -1
            return True
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is not None and self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None


def poller_lock(store: Store, mailbox: str) -> AdvisoryLock | FileLock:
    """The lock that keeps ``mailbox`` to one poller among the gateways sharing ``store``."""
    if store.is_postgres:
        return AdvisoryLock(store.url, mailbox)
    path = sqlite_path(engine_url(store.url))
    if path is None:
        return FileLock(None)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", mailbox)
    return FileLock(path.with_name(f"{path.name}.imap-{safe}.lock"))
