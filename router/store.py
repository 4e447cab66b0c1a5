"""The ticket store: a synchronous SQLAlchemy engine driven from one dedicated writer thread.

Why not an async driver: on these machines a sync engine on its own thread commits ~1.4x more
contacts per second than aiosqlite (../shared/PERF-NOTES.md), and one writer thread is what
SQLite wants anyway. Reads run on a small separate pool (SQLite WAL lets them run beside the
writer; PostgreSQL doesn't care).

Group commit: ``write(fn)`` queues ``fn``; whatever is queued when the writer becomes free runs
as one transaction, so the fsync is shared. If any ``fn`` fails, the batch is rolled back and
each ``fn`` is run again in a transaction of its own, so one failing contact fails alone. Every
caller is answered only after its COMMIT returned. An ``fn`` that lost a race on a unique key to
another writer of the same database runs again at once (at most ``MAX_RACE_RETRIES`` times,
logged at DEBUG): it then sees the winner's row, e.g. as a duplicate contact. The same goes
for the side PostgreSQL aborts to break a deadlock (two batches' conversation locks,
``router.thread_lock``).

Durability on SQLite: WAL with ``synchronous=FULL`` -- a commit survives power loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from normalizer.intake import TemporaryIntakeError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 64
# Writes queued behind the running batch, at most: beyond it a write is refused at once as
# temporary (SMTP 451, HTTP 503) instead of the queue, and the memory it holds, growing unbounded
# while the database is slow.
MAX_PENDING_WRITES = 4096
# A job that lost a race on a unique key runs again at once (it then sees the winner's row).
MAX_RACE_RETRIES = 3


def engine_url(url: str) -> str:
    """Map the contract's database URLs onto the drivers spoc ships with.

    ``postgresql://`` and ``postgres://`` use psycopg 3; ``sqlite:///`` uses the stdlib driver.
    An explicit ``+driver`` is kept as given.
    """
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///path`` URL (None for in-memory databases)."""
    parsed = sa.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(writer: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not pysqlite) issue BEGIN, so transactions begin where we say.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    return on_connect


def create_engines(url: str) -> tuple[Engine, Engine]:
    """A writer engine (one connection) and a reader engine for ``url``."""
    real = engine_url(url)
    if is_sqlite(real):
        path = sqlite_path(real)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        common: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        writer = sa.create_engine(real, pool_size=1, max_overflow=1, **common)  # +1: run_sync
        reader = sa.create_engine(real, pool_size=4, max_overflow=4, **common)
        event.listen(writer, "connect", _sqlite_pragmas(writer=True))
        event.listen(reader, "connect", _sqlite_pragmas(writer=False))

        @event.listens_for(writer, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(reader, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return writer, reader
    # Fail fast when the server is unreachable: the intake answers "try again" (SMTP 451,
    # HTTP 503) instead of holding connections open while the database is down.
    pg: dict[str, Any] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}
    writer = sa.create_engine(real, pool_size=2, max_overflow=2, **pg)
    reader = sa.create_engine(real, pool_size=4, max_overflow=4, **pg)
    return writer, reader


@dataclass(slots=True)
class _Job:
    fn: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    before: Callable[[], object] | None = None  # run once before the job's BEGIN
    before_ran: bool = False  # set where it ran: the prepare thread, or the writer in-line
    before_error: BaseException | None = None
    result: Any = None
    error: BaseException | None = None
    races_lost: int = 0


@dataclass(slots=True)
class _Batcher:
    pending: list[_Job] = field(default_factory=list)
    running: bool = False
    # The next jobs' ``before``s running on the prepare thread while a batch commits; the next
    # batch starts once they are done (so a job's ``before`` runs in one place only).
    preparing: asyncio.Future[None] | None = None


class StoreClosedError(TemporaryIntakeError):
    """The store is closed (shutting down); the sender should retry later."""


class StoreBusyError(TemporaryIntakeError):
    """Too many writes are queued already; the sender should retry later."""


class Store:
    """Owns the engines and the writer thread. Create with :meth:`from_url`; ``start``/``close``.

    ``write(fn)`` runs ``fn(conn)`` inside a transaction on the writer thread (group-committed)
    and returns its result after COMMIT; ``write(fn, before)`` first runs ``before()`` outside
    any transaction (work ``fn`` needs that must not hold the write lock, such as the
    classifier's reading): for the jobs queued behind a batch, on the prepare thread while that
    batch commits (one hop for them all, overlapping the fsync), else on the writer thread when
    the job's batch starts. ``read(fn)`` runs ``fn(conn)`` on a reader thread. Database
    failures surface as :class:`TemporaryIntakeError`.
    """

    def __init__(
        self, url: str, writer: Engine, reader: Engine, max_pending: int = MAX_PENDING_WRITES
    ) -> None:
        self.url = url
        self._max_pending = max_pending
        self.dialect = writer.dialect.name
        self._writer = writer
        self._reader = reader
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="spoc-db-writer")
        self._prepare_pool = ThreadPoolExecutor(1, thread_name_prefix="spoc-db-prepare")
        self._read_pool = ThreadPoolExecutor(4, thread_name_prefix="spoc-db-reader")
        self._batcher = _Batcher()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer_conn: Connection | None = None

    @classmethod
    def from_url(cls, url: str, max_pending: int = MAX_PENDING_WRITES) -> Store:
        writer, reader = create_engines(url)
        return cls(url, writer, reader, max_pending)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    async def close(self) -> None:
        """Finish queued writes, then release connections and threads."""
        self._closed = True
        await self._idle.wait()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_pool, self._close_writer_conn)
        self._write_pool.shutdown(wait=True)
        self._prepare_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        self._writer.dispose()
        self._reader.dispose()

    # ---- writes -------------------------------------------------------------------------
    async def write(
        self, fn: Callable[[Connection], T], before: Callable[[], object] | None = None
    ) -> T:
        if self._closed or self._loop is None:
            raise StoreClosedError("the store is not accepting writes (shutting down)")
        if len(self._batcher.pending) >= self._max_pending:
            raise StoreBusyError(
                f"{len(self._batcher.pending)} writes are queued already; try later"
            )
        future: asyncio.Future[T] = self._loop.create_future()
        self._batcher.pending.append(_Job(fn, future, before))
        if not self._batcher.running:
            self._run_next_batch()
        return await future

    def _prepare_next(self) -> None:
        """While a batch commits (the writer waits for its fsync), run the ``before``s of the
        next batch's jobs on the prepare thread: one hop per batch, not per job. (Jobs that
        arrive during the commit run theirs on the writer, in-line, before their batch.)"""
        assert self._loop is not None
        if self._batcher.preparing is not None:
            return
        jobs = [j for j in self._batcher.pending[:MAX_BATCH] if j.before and not j.before_ran]
        if not jobs:
            return
        for job in jobs:
            job.before_ran = True  # handed over: the writer must not run it as well
        preparing = self._loop.run_in_executor(self._prepare_pool, _run_befores, jobs)
        self._batcher.preparing = preparing
        preparing.add_done_callback(self._prepared)

    def _prepared(self, _: asyncio.Future[None]) -> None:
        self._batcher.preparing = None
        if not self._batcher.running:  # the batch before finished meanwhile
            self._run_next_batch()

    def _run_next_batch(self) -> None:
        assert self._loop is not None
        if self._batcher.preparing is not None:  # its jobs go in the next batch: wait for them
            self._batcher.running = False
            return
        batch = self._batcher.pending[:MAX_BATCH]
        del self._batcher.pending[:MAX_BATCH]
        if not batch:
            self._batcher.running = False
            self._idle.set()
            return
        self._batcher.running = True
        self._idle.clear()
        done = self._loop.run_in_executor(self._write_pool, self._commit_batch, batch)
        done.add_done_callback(lambda f: self._finish_batch(batch, f))

    def _finish_batch(self, batch: list[_Job], outcome: asyncio.Future[None]) -> None:
        commit_error = outcome.exception()
        for job in batch:
            if job.future.done():  # the caller went away (cancelled)
                continue
            if commit_error is not None:
                job.future.set_exception(_temporary(commit_error))
            elif job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
        self._run_next_batch()

    def _conn(self) -> Connection:
        if self._writer_conn is None or self._writer_conn.closed:
            self._writer_conn = self._writer.connect()
        return self._writer_conn

    def _close_writer_conn(self) -> None:
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    def _commit_batch(self, batch: list[_Job]) -> None:
        """Runs on the writer thread. Optimistic group commit: the whole batch in one
        transaction. When a job fails, the transaction is rolled back, that job gets its error
        and the others are committed again as a group; a failure at COMMIT fails them all.
        (A SAVEPOINT per job would cost two statements on every contact to save work only on
        failures.) First each job's ``before`` runs, once, outside the transaction (unless the
        prepare thread ran it already); a job whose ``before`` raised fails alone with that
        error.
        """
        _run_befores([job for job in batch if job.before and not job.before_ran])
        for job in batch:
            job.error = job.before_error
        pending = [job for job in batch if job.before_error is None]
        while pending:
            for job in pending:
                job.result = None
            failed_at = self._transaction(pending)
            if failed_at is None:
                return
            index, exc = failed_at
            if index is None:  # the COMMIT (or the connection) failed: nothing was stored
                for job in pending:
                    job.error = _job_error(exc)
                return
            job = pending[index]
            if _lost_race(exc) and job.races_lost < MAX_RACE_RETRIES:
                # Another writer (a second gateway, `spoc replay`) committed the same key
                # between this job's check and its insert, or PostgreSQL broke a deadlock
                # between two batches' conversation locks: not an outage, run it again.
                job.races_lost += 1
                log.debug("lost a race, running the job again: %s", exc.orig)
                continue
            job.error = _job_error(exc)
            del pending[index]

    def _transaction(self, jobs: list[_Job]) -> tuple[int | None, Exception] | None:
        """Run ``jobs`` in one transaction. None when committed, else ``(index, error)``: the
        index of the job that failed, or None when the COMMIT or the connection did."""
        conn = self._conn()
        loop = self._loop
        assert loop is not None
        current: int | None = None
        try:
            with conn.begin():
                for index, job in enumerate(jobs):
                    current = index
                    job.result = job.fn(conn)
                current = None
                # COMMIT next: the queued jobs' befores can run meanwhile, on the prepare thread.
                if any(job.before for job in self._batcher.pending[:MAX_BATCH]):
                    loop.call_soon_threadsafe(self._prepare_next)
        except Exception as exc:
            if isinstance(exc, sa.exc.DBAPIError):
                self._close_writer_conn()  # go on with a fresh connection
                if exc.connection_invalidated:
                    current = None  # the database went away: not this job's fault
            return current, exc
        return None

    # ---- reads --------------------------------------------------------------------------
    async def read(self, fn: Callable[[Connection], T]) -> T:
        if self._closed:
            raise StoreClosedError("the store is closed (shutting down)")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_pool, self._read_sync, fn)
        except sa.exc.DBAPIError as exc:
            raise TemporaryIntakeError(f"database unavailable: {exc.orig!r}") from exc

    def _read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self._reader.connect() as conn, conn.begin():
            return fn(conn)

    async def ping(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109 - a bound, not a cancel scope
        """True when the database answers a trivial query within ``timeout`` seconds."""
        if self._closed:
            return False
        try:
            await asyncio.wait_for(
                self.read(lambda c: c.execute(sa.text("SELECT 1")).scalar()), timeout
            )
        except (TemporaryIntakeError, TimeoutError, RuntimeError):
            return False
        return True

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a transaction on the caller's thread (CLI tools, tests, migrations)."""
        with self._writer.connect() as conn, conn.begin():
            return fn(conn)


def _run_befores(jobs: list[_Job]) -> None:
    """Run each job's ``before``, keeping an error for the job's caller."""
    for job in jobs:
        job.before_ran = True
        try:
            job.before()  # type: ignore[misc]  # only jobs with one are passed
        except Exception as exc:
            job.before_error = exc


# PostgreSQL aborts one side of a deadlock (two batches locking conversations in turn).
_DEADLOCK_DETECTED = "40P01"


def _lost_race(exc: Exception) -> TypeGuard[sa.exc.DBAPIError]:
    """A duplicate key, or the losing side of a deadlock: running the job again succeeds."""
    if _unique_violation(exc):
        return True
    return (
        isinstance(exc, sa.exc.DBAPIError)
        and getattr(exc.orig, "sqlstate", None) == _DEADLOCK_DETECTED
    )


def _unique_violation(exc: Exception) -> TypeGuard[sa.exc.IntegrityError]:
    """Whether ``exc`` is a duplicate key: PostgreSQL's SQLSTATE 23505, SQLite's UNIQUE or
    PRIMARY KEY constraint."""
    if not isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23505" or getattr(
        orig, "sqlite_errorname", None
    ) in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def _job_error(exc: Exception) -> BaseException:
    """What a job's caller sees: database trouble (a unique key still taken after the retries
    included) is temporary; anything else is the job's own error."""
    return _temporary(exc)


def _temporary(exc: BaseException) -> BaseException:
    if isinstance(exc, TemporaryIntakeError):
        return exc
    if isinstance(exc, sa.exc.IntegrityError):
        err = TemporaryIntakeError(f"database conflict: {type(exc.orig).__name__}: {exc.orig}")
        err.__cause__ = exc
        return err
    if isinstance(exc, sa.exc.DBAPIError):
        err = TemporaryIntakeError(f"database unavailable: {type(exc.orig).__name__}: {exc.orig}")
        err.__cause__ = exc
        return err
    if isinstance(exc, sa.exc.SQLAlchemyError | OSError):
        err = TemporaryIntakeError(f"database error: {exc}")
        err.__cause__ = exc
        return err
    return exc
