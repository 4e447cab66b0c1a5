"""One big binary value (a raw message) read without the driver's text-format copies.

psycopg asks PostgreSQL for results in text format unless told otherwise: a ``bytea`` then comes
as hex, twice its size, which libpq holds while psycopg decodes it. Reading a 25 MB raw message
through SQLAlchemy that way peaked at 6x its size in the reading process; asked for in binary
format it comes as its bytes, 2x (the row libpq keeps and the ``bytes`` handed back). So through
psycopg (the driver spoc maps ``postgresql://`` to) :func:`read_blob` runs its statement on a
binary-format cursor of the same connection (inside the same transaction). SQLite hands the
blob's bytes over as they are; any other driver (an explicit ``postgresql+<driver>://``, which
the config accepts) is read the ordinary way.

Only for a statement that selects one binary column: the driver's value is returned as it is,
without SQLAlchemy's result processing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def read_blob(conn: Connection, stmt: sa.Select[Any]) -> bytes | None:
    """The first column of the first row ``stmt`` selects, as bytes; None without a row or for
    NULL."""
    if conn.dialect.driver != "psycopg":  # cursor(binary=True) is psycopg 3's
        value = conn.execute(stmt).scalar()
    else:
        compiled = stmt.compile(dialect=conn.dialect)
        with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(str(compiled), compiled.params)
            row = cursor.fetchone()
        value = row[0] if row else None
    return None if value is None else bytes(value)
