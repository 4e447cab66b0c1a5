"""The store's writer: a unique key that stays taken is retried a bounded number of times."""

from __future__ import annotations

import asyncio
import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.intake import TemporaryIntakeError
from router.schema import requesters
from router.store import MAX_RACE_RETRIES
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
