"""Serialize the contacts of one conversation across gateways sharing one PostgreSQL.

Two instances that take two contacts of one conversation at once (a call's recording and its
transcript, a Slack message and a reaction on it, one mail through two MX hosts) would each
look the thread key up, find nothing and open a ticket each. :func:`lock_conversation` takes a
transaction-scoped advisory lock on every key the contact may be found under or found by --
its dedupe key ``(channel, external_id)``, the ids it refers to and its own thread ids -- before
the router looks anything up. The second instance waits for the first one's COMMIT, then finds
its ticket (or its contact, as a duplicate). The locks go with the transaction.

Keys are locked in one statement in ascending order, so two contacts never wait for each
other. A group-committed batch holds the locks of several contacts, so two batches on two
instances can still deadlock; PostgreSQL then aborts one and the store runs it again
(``router.store``: a lost race, not an outage).

SQLite needs none of this: its writer takes the database lock at ``BEGIN IMMEDIATE``, so two
writers of one file are serial already.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import Contact
from router import prepared
from router.conversation import own_keys, thread_keys

_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k"
    " ORDER BY k) AS ordered"
)


def conversation_keys(contact: Contact) -> set[str]:
    """Every name under which another contact of this conversation may meet this one."""
    keys = {f"contact:{contact.channel.value}:{contact.external_id}"}
    keys.update(k for k, _ in thread_keys(contact))
    keys.update(own_keys(contact))
    return keys


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` (the same in every process)."""
    digest = hashlib.sha256(f"spoc conversation {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_conversation(conn: Connection, contact: Contact) -> None:
    """Wait for, then hold until COMMIT, the locks on ``contact``'s conversation (PostgreSQL)."""
    if conn.dialect.name == "postgresql":  # the keys are not even worked out on SQLite
        lock_names(conn, conversation_keys(contact))


def lock_names(conn: Connection, names: Iterable[str]) -> None:
    """Wait for, then hold until COMMIT, an advisory lock on each name (PostgreSQL only; on
    SQLite the one writer is serial already)."""
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({lock_key(name) for name in names})
    prepared.run(conn, _LOCK, {"keys": keys})
