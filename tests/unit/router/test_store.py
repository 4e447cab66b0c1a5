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


async def test_a_write_beyond_the_queue_bound_is_refused_as_temporary_not_queued(
    tmp_path: Path,
) -> None:
    """A slow database must not let queued writes (each holding a message) grow without bound:
    beyond ``max_pending`` the caller hears "try later" at once, and what was queued commits."""
    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db", max_pending=2)
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    release, running = threading.Event(), threading.Event()

    def slow(conn: Connection) -> str:
        running.set()
        release.wait(30)  # a hang guard only
        return "slow"

    def quick(conn: Connection) -> str:
        return "quick"

    first = asyncio.ensure_future(store.write(slow))
    await asyncio.to_thread(running.wait, 30)
    queued = [asyncio.ensure_future(store.write(quick)) for _ in range(2)]
    await asyncio.sleep(0)  # let both reach the queue

    with pytest.raises(StoreBusyError, match="queued"):
        await store.write(quick)
    release.set()
    assert await asyncio.gather(first, *queued) == ["slow", "quick", "quick"]
    assert await store.write(quick) == "quick"  # the bound is on the queue, not for good
    await store.close()


async def test_before_runs_once_per_job_outside_the_transaction_and_fails_its_job_alone(
    desk: Desk, tmp_path: Path
) -> None:
    """``write(fn, before)``: the classifier's reading runs on the writer thread before the
    batch's BEGIN (not holding SQLite's write lock), once even when the batch runs again after
    a lost race, and a ``before`` that raises fails its own job only."""
    lock_free: list[bool] = []
    befores: list[str] = []
    first_run = True

    def writable_now() -> bool:  # another connection takes the write lock at once, or not
        other = sqlite3.connect(tmp_path / "spoc.db", timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            other.close()

    def before(name: str) -> Callable[[], None]:
        def run() -> None:
            befores.append(name)
            lock_free.append(writable_now())
            if name == "broken":
                raise ValueError("reading broke")

        return run

    def insert(row_id: int, race: bool = False) -> Callable[[Connection], int]:
        def fn(conn: Connection) -> int:
            nonlocal first_run
            row = {"id": row_id, "name": "r", "created_at": desk.clock()}
            conn.execute(sa.insert(requesters), [row])
            if race and first_run:  # a key another writer took, the first time only
                first_run = False
                conn.execute(sa.insert(requesters), [row])
            return row_id

        return fn

    started = desk.store.write(insert(1))  # keeps the writer busy, so the next three batch
    outcomes = await asyncio.gather(
        started,
        desk.store.write(insert(2, race=True), before=before("a")),
        desk.store.write(insert(3), before=before("broken")),
        desk.store.write(insert(4), before=before("b")),
        return_exceptions=True,
    )
    assert outcomes[:2] == [1, 2] and outcomes[3] == 4
    assert isinstance(outcomes[2], ValueError)
    assert sorted(befores) == ["a", "b", "broken"]  # once each, though the batch ran twice
    assert lock_free == [True, True, True]
    ids = await desk.store.read(lambda c: c.execute(sa.select(requesters.c.id)).scalars().all())
    assert sorted(ids) == [1, 2, 4]
