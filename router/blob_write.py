"""Big binary values written to SQLite without the two copies a bound parameter costs.

A ``bytes`` parameter of 25 MB is copied by the driver (SQLite binds it ``SQLITE_TRANSIENT``)
and again into the row's record before it reaches the pages: the message three times over in
memory for a moment. From ``STREAM_FROM_BYTES`` on, on SQLite, the row is inserted with a
``zeroblob`` of the right length instead, and the value is written into it through SQLite's
incremental blob I/O in 1 MiB pieces, in the same transaction. PostgreSQL takes the value as a
bound parameter as before.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from sqlalchemy.engine import Connection

STREAM_FROM_BYTES = 1 << 20
_PIECE = 1 << 20


def streams(conn: Connection, value: bytes | None) -> bool:
    """Whether ``value`` goes in as a zeroblob filled by :func:`fill` rather than bound."""
    return value is not None and len(value) >= STREAM_FROM_BYTES and conn.dialect.name == "sqlite"


def zeroblob(size_param: str) -> sa.ColumnElement[bytes]:
    """The SQL for a column to be filled later: ``zeroblob(:size_param)``."""
    return sa.func.zeroblob(sa.bindparam(size_param, type_=sa.Integer), type_=sa.LargeBinary)


def fill(conn: Connection, table: sa.Table, column: str, rowid: int, value: bytes) -> None:
    """Write ``value`` into the zeroblob at ``table.column`` of row ``rowid``."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    view = memoryview(value)
    with driver.blobopen(table.name, column, rowid) as blob:
        for start in range(0, len(view), _PIECE):
            blob.write(view[start : start + _PIECE])
