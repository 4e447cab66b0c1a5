"""The ticket store's tables (SQLAlchemy Core). Alembic migrations in ``gateway/migrations``
are generated from and checked against this metadata.

Every lookup on the intake hot path has an index: dedupe ``(channel, external_id)``, identity
``(kind, value)``, threading ``message_ids.message_id`` and ``participants (ticket_id,
address)``, the API's filters and newest-first listing, and the outbox's due rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import Insert

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stored as naive UTC everywhere (SQLite has no time zones); always read back aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else self._naive_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """:meth:`process_bind_param` and the driver type's own step in one function.

        A new ticket binds about a dozen timestamps, most of them the same ``now``; SQLAlchemy's
        way is two wrappers deep, and on SQLite ends in a ``%``-format of a dict. Here the
        value is converted once: naive UTC, and on SQLite the text SQLAlchemy's ``DATETIME``
        writes by default (``datetime.isoformat`` with microseconds gives the same characters).
        The last value converted is remembered by identity (the writer binds one ``now`` many
        times). ``tests/unit/router/test_utc_datetime.py`` holds it to SQLAlchemy's result.
        Any other storage format goes SQLAlchemy's way."""
        impl = self.impl_instance.bind_processor(dialect)
        if impl is None:  # the driver adapts a datetime itself (psycopg)
            return _remembering_last(self._naive_utc)
        stored = getattr(self.impl_instance, "_storage_format", None)
        if isinstance(self.impl_instance, sqlite.DATETIME) and stored == _SQLITE_DATETIME_TEXT:
            return _remembering_last(self._sqlite_text)
        return super().bind_processor(dialect)

    @staticmethod
    def _naive_utc(value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    @classmethod
    def _sqlite_text(cls, value: datetime) -> str:
        return cls._naive_utc(value).isoformat(" ", "microseconds")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


# SQLAlchemy's default text for a datetime on SQLite (``isoformat(" ", "microseconds")``).
_SQLITE_DATETIME_TEXT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _remembering_last(convert: Callable[[datetime], Any]) -> Callable[[datetime | None], Any]:
    """``convert`` for non-None values, the last result kept for the same object. The pair is
    swapped in one assignment, so threads sharing the processor see a consistent one; the
    object kept alive by it cannot be replaced by another at its address."""
    last: list[tuple[datetime | None, Any]] = [(None, None)]

    def process(value: datetime | None) -> Any:
        if value is None:
            return None
        seen, result = last[0]
        if seen is value:
            return result
        result = convert(value)
        last[0] = (value, result)
        return result

    return process


BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid aliasing needs INTEGER

requesters = sa.Table(
    "requesters",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("requester_id", BigID, sa.ForeignKey("requesters.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # email | phone | slack
    sa.Column("value", sa.String(320), nullable=False),
    sa.UniqueConstraint("kind", "value"),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("category", sa.String(100)),
    sa.Column("priority", sa.String(2), nullable=False),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("group_name", sa.String(100), nullable=False),
    sa.Column("tier", sa.Float(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("last_channel", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(998), nullable=False, server_default=""),
    sa.Column("requester_id", BigID, sa.ForeignKey("requesters.id"), nullable=False),
    sa.Column("parent_id", BigID, sa.ForeignKey("tickets.id")),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime()),
    # linking.find_link: a requester's open tickets last touched on other channels, newest first
    sa.Index(None, "requester_id", "status", "last_channel", "updated_at"),
    sa.Index(None, "status", "id"),
    sa.Index(None, "channel", "id"),
    sa.Index(None, "group_name", "id"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id"), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),  # in | out
    sa.Column("external_id", sa.String(998), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("from_addr", sa.String(320)),
    sa.Column("from_name", sa.String(200)),
    sa.Column("recipient", sa.String(320)),  # the address or alias it reached
    sa.Column("thread_key", sa.String(200)),  # chat thread / call it belongs to (replies go there)
    sa.Column("subject", sa.String(998), nullable=False, server_default=""),
    sa.Column("text", sa.Text(), nullable=False, server_default=""),
    sa.Column("auto", sa.String(16), nullable=False, server_default="human"),
    sa.Column("raw_type", sa.String(100)),
    sa.Column("raw", sa.LargeBinary()),
    sa.UniqueConstraint("channel", "external_id"),
)

# Every Message-ID we know belongs to a ticket: the ones people sent us and the ones we wrote.
message_ids = sa.Table(
    "message_ids",
    metadata,
    sa.Column("message_id", sa.String(998), primary_key=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id"), nullable=False),
)

# Who may add to a ticket by reply or [SD-n] tag: the requester and everyone on the thread.
participants = sa.Table(
    "participants",
    metadata,
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id"), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
)

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("contact_id", BigID, sa.ForeignKey("contacts.id"), nullable=False, index=True),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),  # its blob, unless omitted or in part
    sa.Column("omitted", sa.String(200)),  # why only the metadata is kept (e.g. too big)
    sa.Column("part", sa.String(200)),  # MIME part path in the contact's raw mail: no blob
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),  # email.ack | email.reply | forward.*
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id")),
    sa.Column("recipient", sa.String(320)),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | dead
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("locked_until", UTCDateTime()),  # the claim's lease
    sa.Column("claim_token", sa.String(32)),  # fences done/failed to the claim that holds the row
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("requeued_at", UTCDateTime()),  # an operator's retry: the lifetime starts again
    sa.Column("done_at", UTCDateTime()),  # delivered or dead
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "status", "id"),  # pending/dead listings by page, the oldest pending row
    sa.Index(None, "kind", "recipient", "created_at"),  # acks per sender per hour
    sa.Index(None, "kind", "created_at"),  # acks per minute in all: a range, never a scan
    sa.Index(None, "created_at"),
)

# What could not become a contact, kept raw with its reason (router.quarantine). ``kind`` is
# ``system`` (a bounce, feedback report or auto-reply that matches no ticket) or ``error``
# (could not be parsed or routed). The same bytes from the same source are kept once.
quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # system | error
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),  # smtp | email | imap:<name> | …
    sa.Column("raw_type", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("raw", sa.LargeBinary(), nullable=False),
    sa.Column("envelope_sender", sa.String(320)),  # SMTP MAIL FROM when known ("" null sender)
    sa.Column("from_addr", sa.String(320)),
    sa.Column("subject", sa.String(998)),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("replayed_at", UTCDateTime()),
    sa.Column("replayed_as", sa.String(40)),  # the ticket ref it became on replay
    sa.Column("last_replay_error", sa.Text()),
    sa.UniqueConstraint("source", "sha256"),
    sa.Index(None, "kind", "id"),
)

# Addresses a bounce said we cannot deliver to: no acknowledgement goes to them (router.acks).
# What a requester was told once and never again (e.g. "the desk's one address is …").
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("requester_id", BigID, sa.ForeignKey("requesters.id"), primary_key=True),
    sa.Column("notice", sa.String(32), primary_key=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id")),  # where it was said
    sa.Column("at", UTCDateTime(), nullable=False),
)

undeliverable = sa.Table(
    "undeliverable",
    metadata,
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id")),  # where the bounce was recorded
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("marked_at", UTCDateTime(), nullable=False),
)


# Where each IMAP poller is in each folder (router/mailboxes.py): UIDVALIDITY and the last UID
# whose message is committed and moved out.
imap_checkpoints = sa.Table(
    "imap_checkpoints",
    metadata,
    sa.Column("mailbox", sa.String(100), primary_key=True),
    sa.Column("folder", sa.String(1000), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
    sa.Column("last_uid", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Each ticket handed to a [[forward]] target: the key that tool gave it (router.forwards).
# One row per (ticket, target): later events update that record, never make a second one.
forwards = sa.Table(
    "forwards",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("target", sa.String(100), nullable=False),  # the [[forward]] name
    sa.Column("kind", sa.String(16), nullable=False),  # webhook | email | jira | ...
    sa.Column("external_key", sa.String(200)),  # HELPDESK-7, INC0010001, 123 (shown)
    sa.Column("external_id", sa.String(200)),  # the tool's internal id (issueId, sys_id)
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("ticket_id", "target"),
    sa.Index(None, "target", "external_key"),  # a hook names the tool's key
)

# Hook deliveries already applied (and comments we wrote ourselves): a replay changes nothing.
hook_deliveries = sa.Table(
    "hook_deliveries",
    metadata,
    sa.Column("target", sa.String(100), primary_key=True),
    sa.Column("delivery_key", sa.String(200), primary_key=True),
    sa.Column("ticket_id", BigID, sa.ForeignKey("tickets.id")),
    sa.Column("received_at", UTCDateTime(), nullable=False),
)

# State every gateway sharing the database must see alike (docs/architecture.md, "State across
# instances"): nothing a second instance needs lives only in one process.

# Where each phone call is in the IVR (router/calls.py), for its call-status callback, which
# may reach another instance than the menu steps did. Rows older than a day are deleted.
call_progress = sa.Table(
    "call_progress",
    metadata,
    sa.Column("call_sid", sa.String(64), primary_key=True),
    sa.Column("path", sa.String(8)),  # the menu digits chosen; NULL: no choice yet
    sa.Column("offered_ref", sa.String(32)),  # the caller chose to add to this ticket
    sa.Column("after_hours", sa.Boolean(), nullable=False),
    sa.Column("recording", sa.Boolean(), nullable=False),  # reached <Record>
    sa.Column("finished", sa.Boolean(), nullable=False),  # a message taken, or put through
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index(None, "updated_at"),
)

# Secrets the gateways generate once and share (router/shared_secrets.py): the key that signs
# dashboard sessions and form tokens when SPOC_DASHBOARD_SECRET is not set.
shared_secrets = sa.Table(
    "shared_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# One row per counted event of a rate limit (router/rate_limits.py): web form reports, failed
# dashboard logins. ``key_hash`` is a SHA-256 of the client address or email address.
rate_hits = sa.Table(
    "rate_hits",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index(None, "scope", "key_hash", "at"),
    sa.Index(None, "at"),
)

# Dashboard sessions ended by logout before their cookie expires (router/sessions.py).
revoked_sessions = sa.Table(
    "revoked_sessions",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index(None, "expires_at"),
)

# Failed attempts at one IMAP message (router/mailboxes.py), counted across pollers: after
# ``max_failures`` it goes to failed_folder whichever gateway polls. Rows at or below the
# folder's checkpoint are deleted when the checkpoint moves.
imap_failures = sa.Table(
    "imap_failures",
    metadata,
    sa.Column("mailbox", sa.String(100), primary_key=True),
    sa.Column("folder", sa.String(1000), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger(), primary_key=True),
    sa.Column("uid", sa.BigInteger(), primary_key=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


def insert_ignore(conn: Connection, table: sa.Table, *keys: str) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO NOTHING`` for the connection's dialect.

    One statement instead of select-then-insert. To learn whether a row went in, add
    ``.returning(...)``: psycopg's ``rowcount`` is -1 for these through SQLAlchemy.
    """
    return insert_ignore_for(conn.dialect.name, table, *keys)


# Built once per dialect, table and keys: these run several times for every contact, and a
# statement built anew costs its construction and cache key on every call.
@functools.cache
def insert_ignore_for(dialect: str, table: sa.Table, *keys: str) -> Insert:
    """:func:`insert_ignore` for a dialect named, for a statement built once ahead of a call."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys))


def upsert(
    conn: Connection, table: sa.Table, keys: tuple[str, ...], update: tuple[str, ...]
) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET`` the ``update`` columns to the new values."""
    return _upsert(conn.dialect.name, table, keys, update)


@functools.cache
def _upsert(
    dialect: str,
    table: sa.Table,
    keys: tuple[str, ...],
    update: tuple[str, ...],
    counter: str | None = None,
) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table)
    changes: dict[str, Any] = {c: stmt.excluded[c] for c in update}
    if counter is not None:
        changes[counter] = table.c[counter] + 1
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changes)


def upsert_counting(
    conn: Connection, table: sa.Table, keys: tuple[str, ...], counter: str, update: tuple[str, ...]
) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET counter = counter + 1`` and the ``update``
    columns to the new values: count an event in one statement, safe between instances."""
    return _upsert(conn.dialect.name, table, keys, update, counter)
