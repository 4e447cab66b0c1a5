"""Test instrumentation, loaded into a ``spoc serve`` child only by the disk-full test that runs
without ``mount``: its directory is put first on the child's ``PYTHONPATH``.

Every SQLite connection of the child gets ``PRAGMA max_page_count`` from the file named by
``SPOC_TEST_PAGE_LIMIT_FILE`` (read again when it changes): ``1`` caps the database at its
current size, so the next write needing a new page fails with SQLite's own ``SQLITE_FULL``
("database or disk is full"), the error a full disk gives; a large number lifts the cap. Nothing
else in the gateway is touched.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_LIMIT_FILE = os.environ.get("SPOC_TEST_PAGE_LIMIT_FILE")
_applied: dict[int, int] = {}  # id(sqlite3 connection) -> the limit it has


def _wanted() -> int | None:
    if _LIMIT_FILE is None:
        return None
    try:
        with open(_LIMIT_FILE, encoding="ascii") as file:
            return int(file.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _apply_limit(conn: Any, cursor: Any, *_args: Any) -> None:
    dbapi = cursor.connection
    wanted = _wanted()
    if not isinstance(dbapi, sqlite3.Connection) or wanted is None:
        return
    if _applied.get(id(dbapi)) != wanted:
        dbapi.execute(f"PRAGMA max_page_count = {wanted}")
        _applied[id(dbapi)] = wanted


if _LIMIT_FILE is not None:
    event.listen(Engine, "before_cursor_execute", _apply_limit)
