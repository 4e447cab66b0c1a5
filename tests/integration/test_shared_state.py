"""State every instance shares, in a real database (SQLite and PostgreSQL): moving-window rate
limits (``router.rate_limits``), logouts (``router.sessions``) and the generated signing secret
(``router.shared_secrets``). A second Store on the same database stands for another instance."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from router.rate_limits import RateLimits
from router.schema import rate_hits
from router.sessions import RevokedSessions
from router.shared_secrets import shared_secret
from router.store import Store
from tests.unit.router.conftest import Clock


async def test_a_limit_counts_hits_on_both_instances_and_says_when_to_retry(
    stores: tuple[Store, Store],
) -> None:
    clock = Clock()
    a, b = RateLimits(stores[0], clock), RateLimits(stores[1], clock)
    assert await a.hit("webform.email", "bob@example.org", 2, 3600) is None
    clock.advance(minutes=10)
    assert await b.hit("webform.email", "bob@example.org", 2, 3600) is None
    assert await a.wait("webform.email", "bob@example.org", 2, 3600) == pytest.approx(3000)
    assert await b.hit("webform.email", "bob@example.org", 2, 3600) == pytest.approx(3000)
    assert await a.hit("webform.email", "carol@example.org", 2, 3600) is None  # another key
    assert await a.hit("webform.client", "bob@example.org", 2, 3600) is None  # another scope
    clock.advance(minutes=50, seconds=1)  # the first hit left the window
    assert await b.wait("webform.email", "bob@example.org", 2, 3600) is None
    assert await b.hit("webform.email", "bob@example.org", 2, 3600) is None


async def test_hits_are_stored_hashed_and_dropped_once_out_of_the_window(
    stores: tuple[Store, Store],
) -> None:
    clock = Clock()
    limits = RateLimits(stores[0], clock)
    await limits.hit("login", "10.0.0.9", 10, 900)
    clock.advance(seconds=901)
    await limits.hit("login", "10.0.0.10", 10, 900)
    rows = await stores[0].read(
        lambda conn: conn.execute(sa.select(rate_hits.c.key_hash)).scalars().all()
    )
    assert len(rows) == 1 and "10.0.0" not in rows[0]


async def test_concurrent_hits_on_two_instances_never_pass_the_limit(
    stores: tuple[Store, Store],
) -> None:
    a, b = RateLimits(stores[0]), RateLimits(stores[1])
    results = await asyncio.gather(
        *(limits.hit("login", "10.0.0.1", 5, 900) for _ in range(10) for limits in (a, b))
    )
    assert sum(r is None for r in results) == 5


async def test_a_logout_on_one_instance_is_seen_by_the_other(
    stores: tuple[Store, Store],
) -> None:
    clock = Clock()
    a, b = RevokedSessions(stores[0], clock), RevokedSessions(stores[1], clock)
    assert not await b.is_revoked("sid-1")
    await a.revoke("sid-1", clock.now + timedelta(hours=1))
    assert await b.is_revoked("sid-1")
    clock.advance(hours=2)
    await b.revoke("sid-2", clock.now + timedelta(hours=1))  # deletes what has expired
    assert not await a.is_revoked("sid-1")
    assert await a.is_revoked("sid-2")


async def test_every_instance_gets_the_same_generated_secret(stores: tuple[Store, Store]) -> None:
    first, second = await asyncio.gather(
        shared_secret(stores[0], "dashboard"), shared_secret(stores[1], "dashboard")
    )
    assert first == second and len(first) == 32
    assert await shared_secret(stores[1], "other") != first
