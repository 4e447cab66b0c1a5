"""The Alembic migrations build exactly the schema of ``router/schema.py``, on SQLite and
PostgreSQL. A change to the tables without a migration fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway import migrate
from router.schema import metadata
from router.store import engine_url


def _differences(url: str, target: sa.MetaData = metadata) -> list[Any]:
    engine = sa.create_engine(engine_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": migrate.compare_server_default,
                },
            )
            return list(compare_metadata(context, target))
    finally:
        engine.dispose()


def test_upgraded_database_matches_schema_module(db_url: str) -> None:
    migrate.upgrade(db_url)

    assert _differences(db_url) == []


def test_empty_database_differs_from_schema_module(db_url: str) -> None:
    # Proves the comparison sees tables at all: without migrations every table is missing.
    missing = {diff[1].name for diff in _differences(db_url) if diff[0] == "add_table"}
    assert missing == set(metadata.tables)


def test_column_added_to_schema_without_migration_is_reported(db_url: str) -> None:
    changed = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["tickets"].append_column(sa.Column("due_at", sa.DateTime()))
    migrate.upgrade(db_url)

    added = [diff for diff in _differences(db_url, changed) if diff[0] == "add_column"]

    assert [(diff[2], diff[3].name) for diff in added] == [("tickets", "due_at")]


def test_second_upgrade_changes_nothing(db_url: str) -> None:
    migrate.upgrade(db_url)
    before = _differences(db_url)
    revision = migrate.current(db_url)

    migrate.upgrade(db_url)

    assert migrate.current(db_url) == revision == migrate.head()
    assert _differences(db_url) == before == []


def test_check_is_false_before_upgrade_and_true_after(db_url: str) -> None:
    assert migrate.check(db_url) is False

    migrate.upgrade(db_url)

    assert migrate.check(db_url) is True


def test_current_is_none_for_a_database_never_migrated(db_url: str) -> None:
    assert migrate.current(db_url) is None


def test_downgrade_to_base_removes_every_table(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "base")
    engine = sa.create_engine(engine_url(db_url), poolclass=sa.NullPool)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables <= {"alembic_version"}


def test_upgrade_creates_the_directory_of_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'nested' / 'spoc.db'}"

    migrate.upgrade(url)

    assert (tmp_path / "var" / "nested" / "spoc.db").is_file()
    assert migrate.check(url) is True


def test_current_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent' / 'spoc.db'}"

    assert migrate.current(url) is None
    assert not (tmp_path / "absent").exists()
