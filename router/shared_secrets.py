"""Secrets the gateways generate once and share through the database (``shared_secrets``).

The dashboard's session cookies and the HTML forms' tokens are signed with
``SPOC_DASHBOARD_SECRET``; when it is not set, the first gateway to start generates 32 random
bytes and stores them here, and every instance -- and every restart -- signs with the same
key. A session made on one instance is then good on the others behind the load balancer, and
a form rendered by one can be sent to another. Two gateways starting at once both try to
insert; the second insert does nothing, and both read the one row.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.clock import Clock, utcnow
from router.schema import insert_ignore, shared_secrets
from router.store import Store

SECRET_BYTES = 32
_GET = sa.select(shared_secrets.c.value).where(shared_secrets.c.name == sa.bindparam("name"))


async def shared_secret(store: Store, name: str, clock: Clock = utcnow) -> bytes:
    """The secret called ``name``, generated and stored by the first caller on the database."""
    row = {"name": name, "value": secrets.token_bytes(SECRET_BYTES), "created_at": clock()}

    def write(conn: Connection) -> bytes:
        conn.execute(insert_ignore(conn, shared_secrets, "name"), row)
        value = conn.execute(_GET, {"name": name}).scalar_one()
        return bytes(value)

    return await store.write(write)
