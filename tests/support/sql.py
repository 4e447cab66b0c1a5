"""One query against a database given by URL, on a connection of its own (what a test reads
beside the processes it runs)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from router.store import engine_url


def query(db_url: str, statement: str | sa.Executable) -> list[Any]:
    """Every row ``statement`` (SQL text or a Core statement) returns."""
    engine = sa.create_engine(engine_url(db_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            sql = sa.text(statement) if isinstance(statement, str) else statement
            return list(conn.execute(sql).all())
    finally:
        engine.dispose()
