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
