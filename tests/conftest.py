"""Fixtures for real servers shared by every suite.

- ``pg_server``: one throwaway PostgreSQL 15 cluster per session (``tests/support/pgcluster.py``).
- ``pg_url``: a fresh, empty database on it per test: ``postgresql://postgres@127.0.0.1:P/t_…``.
- ``sqlite_url``: ``sqlite:///<tmp_path>/spoc.db``.
- ``db_url``: parametrized over ``sqlite`` and ``postgres`` (the latter marked ``postgres``).
- ``migrated_db_url``: ``db_url`` after ``gateway.migrate.upgrade`` (schema at head).
- ``own_cluster``: a PostgreSQL cluster of the test's own, for tests that stop (``halt``) or
  starve it: doing that to the shared one would break every other test.

A missing server skips with the reason, or fails under ``SPOC_REQUIRE_SERVICES=1`` (CI):
call ``tests.support.services.require_service(reason)`` in your own fixtures for the same behaviour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pgcluster import ClusterUnavailable, PostgresCluster, wait_until_ready
from tests.support.services import require_service

__all__ = ["require_service"]

logger = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresCluster]:
    started_at = time.monotonic()
    try:
        cluster = PostgresCluster.start()
        wait_until_ready(cluster)
    except ClusterUnavailable as exc:
        require_service(f"no PostgreSQL server for the tests: {exc}")
    logger.info(
        "test PostgreSQL cluster on port %d started in %.2fs",
        cluster.port,
        time.monotonic() - started_at,
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster.start()
        wait_until_ready(cluster)
    except ClusterUnavailable as exc:
        require_service(f"no PostgreSQL server of the test's own: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_server: PostgresCluster) -> Iterator[str]:
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'spoc.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL (``-m 'not postgres'`` to skip the latter)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    from gateway.migrate import upgrade

    upgrade(db_url)
    return db_url
