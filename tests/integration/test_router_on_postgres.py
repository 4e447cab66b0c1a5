"""The router's decision tests again, on a real PostgreSQL 15 (the same module, another store).

SQLite and PostgreSQL differ where it matters to the router -- savepoints, RETURNING, ON
CONFLICT, JSON, timestamp handling -- so every decision is proven on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.migrate import upgrade
from router.router import Router
from router.settings import RouterSettings
from router.store import Store
from router.tickets import TicketService
from tests.unit.router.conftest import Clock, Desk, make_settings
from tests.unit.router.test_replies import *  # noqa: F403 - re-run every test on PostgreSQL
from tests.unit.router.test_router import *  # noqa: F403

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings() -> RouterSettings:
    return make_settings()


@pytest.fixture
async def desk(pg_url: str, settings: RouterSettings) -> AsyncIterator[Desk]:
    upgrade(pg_url)
    store = Store.from_url(pg_url)
    await store.start()
    clock = Clock()
    yield Desk(store, Router(store, settings, clock), TicketService(store, settings, clock), clock)
    await store.close()
