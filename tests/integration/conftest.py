"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.migrate import upgrade
from router.store import Store


@pytest.fixture
async def two_stores(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two started stores on one migrated PostgreSQL database: two gateways' writers."""
    upgrade(pg_url)
    first, second = Store.from_url(pg_url), Store.from_url(pg_url)
    await first.start()
    await second.start()
    yield first, second
    await second.close()
    await first.close()


@pytest.fixture
async def store(migrated_db_url: str) -> AsyncIterator[Store]:
    """A started store on a migrated database (SQLite and PostgreSQL)."""
    store = Store.from_url(migrated_db_url)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def stores(migrated_db_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two started stores on one migrated database: what two ``spoc serve`` processes have."""
    first, second = Store.from_url(migrated_db_url), Store.from_url(migrated_db_url)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
