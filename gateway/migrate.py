"""Schema migrations (Alembic), configured in code: no ``alembic.ini`` is needed at run time.

The scripts live in ``gateway/migrations/`` and are checked against ``router.schema.metadata``
by ``tests/integration/test_migrations.py``. ``spoc db upgrade`` calls :func:`upgrade`;
``spoc serve`` calls it for SQLite itself.

URLs are the ones operators write in ``[database] url``: ``sqlite:///var/spoc.db`` (relative to
the working directory) or ``postgresql://user@host:port/db``; ``router.store.engine_url`` picks
the driver (psycopg 3 for PostgreSQL).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from router.store import engine_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _bare_default(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and (text[0], text[-1]) in {("(", ")"), ("'", "'")}:
        text = text[1:-1].strip()
    return text


def compare_server_default(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic hook: SQLite reflects ``''`` as ``('')``; equal after unquoting is no change.

    Returns False (same) when both sides agree once parentheses and quotes are stripped,
    otherwise None so Alembic's own comparison decides.
    """
    if inspected_default is None or rendered_metadata_default is None:
        return None
    if _bare_default(inspected_default) == _bare_default(rendered_metadata_default):
        return False
    return None


def _ensure_sqlite_directory(url: sa.URL) -> None:
    """Create the parent directory of a SQLite file so a fresh checkout can just start."""
    if url.get_backend_name() != "sqlite":
        return
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _sqlite_file_missing(url: sa.URL) -> bool:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return False
    return not database.startswith("file:") and not Path(database).exists()


@contextmanager
def _connection(url: str) -> Iterator[sa.Connection]:
    target = sa.make_url(engine_url(url))
    _ensure_sqlite_directory(target)
    engine = sa.create_engine(target, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the newest). Idempotent."""
    config = _alembic_config()
    with _connection(url) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if before != after:
        logger.info("database schema upgraded from %s to %s", before or "empty", after)
    else:
        logger.debug("database schema already at %s", after)


def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (``"base"``: no tables). Operators only."""
    config = _alembic_config()
    with _connection(url) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    logger.info("database schema downgraded to %s", revision)


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` for a database never migrated.

    Only looks: a SQLite file that does not exist yet is not created.
    """
    if _sqlite_file_missing(sa.make_url(engine_url(url))):
        return None
    with _connection(url) as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    return str(revision) if revision is not None else None


def head() -> str:
    """The newest revision the shipped migrations know."""
    revision = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return str(revision)


def check(url: str) -> bool:
    """True when the database at ``url`` is at the newest revision (nothing to upgrade)."""
    return current(url) == head()
