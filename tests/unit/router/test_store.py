"""The store's writer: a unique key that stays taken is retried a bounded number of times, the
queue is bounded, and a write's ``before`` runs once, outside the transaction."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.intake import TemporaryIntakeError
from router.schema import metadata, requesters
from router.store import MAX_RACE_RETRIES, Store, StoreBusyError
from tests.unit.router.conftest import Desk


async def test_a_key_that_stays_taken_is_tried_a_few_times_then_reported_as_a_conflict(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    runs = 0

    def insert_twice(conn: Connection) -> None:
        nonlocal runs
        runs += 1
        row = {"id": 7, "name": "x", "created_at": desk.clock()}
        conn.execute(sa.insert(requesters), [row])
        conn.execute(sa.insert(requesters), [row])  # the same primary key: never succeeds

    with caplog.at_level(logging.DEBUG, logger="router.store"):
        with pytest.raises(TemporaryIntakeError, match="database conflict"):
            await desk.store.write(insert_twice)
    assert runs == 1 + MAX_RACE_RETRIES
    assert [r.levelno for r in caplog.records if "race" in r.getMessage()] == [
        logging.DEBUG
    ] * MAX_RACE_RETRIES


async def test_other_jobs_of_the_batch_still_commit_beside_a_retried_one(desk: Desk) -> None:
    first_run = True

    def taken_once(conn: Connection) -> str:
        nonlocal first_run
        row = {"id": 8, "name": "y", "created_at": desk.clock()}
        conn.execute(sa.insert(requesters), [row])
        if first_run:  # a row that "another writer" holds the first time only
            first_run = False
            conn.execute(sa.insert(requesters), [row])
        return "stored"

    def plain(conn: Connection) -> str:
        conn.execute(sa.insert(requesters), [{"id": 9, "name": "z", "created_at": desk.clock()}])
        return "stored"

    assert await asyncio.gather(desk.store.write(taken_once), desk.store.write(plain)) == [
        "stored",
        "stored",
    ]
    ids = await desk.store.read(lambda c: c.execute(sa.select(requesters.c.id)).scalars().all())
    assert sorted(ids) == [8, 9]


async def _writer_held(store: Store) -> tuple[asyncio.Future[str], threading.Event]:
    """A write (answering "slow") that keeps the writer busy until the event is set, once it is
    running: what is written next queues behind it."""
    release, running = threading.Event(), threading.Event()

    def slow(conn: Connection) -> str:
        running.set()
        release.wait(30)  # a hang guard only
        return "slow"

    first = asyncio.ensure_future(store.write(slow))
    await asyncio.to_thread(running.wait, 30)
    return first, release


async def test_a_write_beyond_the_queue_bound_is_refused_as_temporary_not_queued(
    tmp_path: Path,
) -> None:
    """A slow database must not let queued writes (each holding a message) grow without bound:
    beyond ``max_pending`` the caller hears "try later" at once, and what was queued commits."""
    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db", max_pending=2)
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()

    def quick(conn: Connection) -> str:
        return "quick"

    first, release = await _writer_held(store)
    queued = [asyncio.ensure_future(store.write(quick)) for _ in range(2)]
    await asyncio.sleep(0)  # let both reach the queue

    with pytest.raises(StoreBusyError, match="queued"):
        await store.write(quick)
    release.set()
    assert await asyncio.gather(first, *queued) == ["slow", "quick", "quick"]
    assert await store.write(quick) == "quick"  # the bound is on the queue, not for good
    await store.close()


def _writable_now(db: Path) -> bool:
    """Whether another connection takes SQLite's write lock at once (no transaction holds it)."""
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def _insert(desk: Desk, row_id: int, race: list[bool] | None = None) -> Callable[[Connection], int]:
    def fn(conn: Connection) -> int:
        row = {"id": row_id, "name": "r", "created_at": desk.clock()}
        conn.execute(sa.insert(requesters), [row])
        if race:  # a key another writer took, the first time only
            race.pop()
            conn.execute(sa.insert(requesters), [row])
        return row_id

    return fn


async def test_a_write_s_before_runs_on_the_idle_writer_outside_any_transaction(
    desk: Desk, tmp_path: Path
) -> None:
    """``write(fn, before)`` on an idle store: ``before`` (the classifier's reading) runs on
    the writer thread, before BEGIN: it holds no write lock."""
    seen: list[tuple[str, bool]] = []

    def before() -> None:
        seen.append((threading.current_thread().name, _writable_now(tmp_path / "spoc.db")))

    assert await desk.store.write(_insert(desk, 1), before=before) == 1
    [(thread, lock_free)] = seen
    assert thread.startswith("spoc-db-writer") and lock_free


async def test_befores_of_writes_queued_behind_a_batch_run_while_it_commits_once_each(
    desk: Desk,
) -> None:
    """Writes queued while a batch runs have their ``before``s run on the prepare thread while
    that batch commits (one hop for them all, not one per job); each runs once, even when their
    own batch runs again after a lost race, and one that raises fails its own job only."""
    befores: list[tuple[str, str]] = []

    def before(name: str) -> Callable[[], None]:
        def run() -> None:
            befores.append((name, threading.current_thread().name))
            if name == "broken":
                raise ValueError("reading broke")

        return run

    first, release = await _writer_held(desk.store)
    queued = [
        asyncio.ensure_future(desk.store.write(_insert(desk, 2, race=[True]), before=before("a"))),
        asyncio.ensure_future(desk.store.write(_insert(desk, 3), before=before("broken"))),
        asyncio.ensure_future(desk.store.write(_insert(desk, 4), before=before("b"))),
    ]
    await asyncio.sleep(0.05)  # all three queued behind the first batch
    assert befores == []
    release.set()
    outcomes = await asyncio.gather(first, *queued, return_exceptions=True)
    assert outcomes[:2] == ["slow", 2] and outcomes[3] == 4
    assert isinstance(outcomes[2], ValueError)
    assert befores == [  # once each, in order, on the prepare thread
        ("a", "spoc-db-prepare_0"),
        ("broken", "spoc-db-prepare_0"),
        ("b", "spoc-db-prepare_0"),
    ]
    ids = await desk.store.read(lambda c: c.execute(sa.select(requesters.c.id)).scalars().all())
    assert sorted(ids) == [2, 4]


async def test_a_batch_whose_befores_the_prepare_thread_runs_waits_for_them(desk: Desk) -> None:
    """The prepare thread reads the queued jobs' ``before``s while the batch ahead commits; if
    that batch ends first, the next one must wait for them: a job whose ``fn`` ran before its
    ``before`` had finished would commit without the classifier's answer (and the model would
    run on two threads at once). Slow ``before``s make the batch ahead end first."""
    finished: set[int] = set()
    seen_by_fn: dict[int, bool] = {}

    def before(row_id: int) -> Callable[[], None]:
        def run() -> None:
            threading.Event().wait(0.1)  # a reading slower than the batch ahead's COMMIT
            finished.add(row_id)

        return run

    def fn(row_id: int) -> Callable[[Connection], int]:
        insert = _insert(desk, row_id)

        def run(conn: Connection) -> int:
            seen_by_fn[row_id] = row_id in finished
            return insert(conn)

        return run

    first, release = await _writer_held(desk.store)
    queued = [
        asyncio.ensure_future(desk.store.write(fn(row_id), before=before(row_id)))
        for row_id in (2, 3)
    ]
    await asyncio.sleep(0.05)  # both queued behind the first batch
    release.set()
    assert await asyncio.gather(first, *queued) == ["slow", 2, 3]
    assert seen_by_fn == {2: True, 3: True}
