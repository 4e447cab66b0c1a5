"""Fill a spoc database with N old tickets, fast, for the "big database" benchmark.

Each seeded ticket gets what a real e-mail ticket leaves behind on the intake path: a requester
and its e-mail identity, the ticket, one inbound contact (about 300 bytes of text, no raw copy),
its Message-ID in ``message_ids``, the requester as participant, a ``created`` event and a
delivered ``email.ack`` outbox row. Creation dates are spread over the last two years and 80 %
of the tickets are resolved or closed.

The schema is created with ``spoc db upgrade`` (a subprocess: nothing here imports ``gateway``).
Rows go in with SQLAlchemy Core ``executemany`` in batches, a few transactions in all, with
``PRAGMA synchronous=OFF`` on the seeding connection only (the gateway sets FULL on its own).

On PostgreSQL (``seed_url`` with a ``postgresql://`` URL, already migrated) the same rows are
made by the server itself, one ``INSERT … SELECT … FROM generate_series`` per table, and the id
sequences are moved past them.

    python bench/seed_tickets.py --db /tmp/spoc-1m.db --tickets 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.schema import (
    contacts,
    events,
    identities,
    message_ids,
    outbox,
    participants,
    requesters,
    tickets,
)

log = logging.getLogger(__name__)

BATCH = 20_000  # tickets per executemany round
COMMIT_EVERY = 200_000  # tickets per transaction
SEED_DOMAIN = "seed.example.org"
_TEXT = (
    "Hello, my laptop does not connect to the VPN since this morning. I restarted it twice "
    "and the client still says the certificate is not valid. Could you please have a look? "
    "I have a customer call at three. Thanks, and sorry for the trouble. -- sent from a "
    "seeded benchmark ticket, number {i}."
)
_STATUSES = ("closed", "closed", "closed", "resolved", "resolved", "closed", "closed", "resolved",
             "new", "open")  # fmt: skip
_PRIORITIES = ("P3", "P3", "P3", "P4", "P2", "P3", "P4", "P1")


def upgrade_schema(db: Path) -> None:
    """Create or migrate the database through the CLI, exactly as an operator would."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{db.resolve()}"\n', encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "gateway", "db", "upgrade", "--config", str(config)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def _next_id(conn: Connection, table: sa.Table) -> int:
    return (
        int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()) + 1
    )


_COLUMNS: dict[str, tuple[str, ...]] = {
    "requesters": ("id", "name", "created_at"),
    "identities": ("id", "requester_id", "kind", "value"),
    "tickets": ("id", "status", "kind", "category", "priority", "owner", "group_name", "tier",
                "channel", "last_channel", "subject", "requester_id", "parent_id", "created_at",
                "updated_at", "closed_at"),
    "contacts": ("id", "ticket_id", "channel", "direction", "external_id", "received_at",
                 "from_addr", "from_name", "recipient", "subject", "text", "auto", "raw_type",
                 "raw"),
    "message_ids": ("message_id", "ticket_id"),
    "participants": ("ticket_id", "address"),
    "events": ("id", "ticket_id", "at", "type", "detail"),
    "outbox": ("id", "kind", "ticket_id", "recipient", "idempotency_key", "payload", "status",
               "attempts", "next_attempt_at", "locked_until", "last_error", "created_at",
               "done_at"),
}  # fmt: skip
_TABLES = {
    t.name: t
    for t in (requesters, identities, tickets, contacts, message_ids, participants, events, outbox)
}
Row = tuple[Any, ...]


def _stamp(at: datetime | None) -> str | None:
    """A UTC datetime as ``router.schema.UTCDateTime`` stores it on SQLite."""
    if at is None:
        return None
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _insert_sql(name: str) -> str:
    """The Core table's INSERT, with the driver's positional parameters."""
    columns = _COLUMNS[name]
    table = _TABLES[name]
    unknown = set(columns) - {c.name for c in table.columns}
    required = {
        c.name
        for c in table.columns
        if not c.nullable and c.server_default is None and not c.primary_key
    }
    missing = required - set(columns)
    if unknown or missing:
        raise RuntimeError(f"{name}: schema changed ({unknown=}, {missing=}): update the seeder")
    return f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _rows(first: int, count: int, now: datetime) -> Iterator[dict[str, list[Row]]]:
    """Rows for tickets ``first .. first+count-1``, one batch of BATCH tickets at a time.

    Values are bound as the schema's types store them on SQLite (UTC text timestamps, JSON
    text), so the driver's ``executemany`` takes them without SQLAlchemy's per-row work.
    """
    rnd = random.Random(first)
    span = timedelta(days=730).total_seconds()
    for start in range(first, first + count, BATCH):
        batch: dict[str, list[Row]] = {name: [] for name in _COLUMNS}
        for i in range(start, min(start + BATCH, first + count)):
            at = now - timedelta(seconds=span * (first + count - i) / (count + 1))
            status = _STATUSES[i % len(_STATUSES)]
            closed = at + timedelta(hours=rnd.randint(1, 72)) if status == "closed" else None
            stamp, closed_at = _stamp(at), _stamp(closed)
            address = f"user{i}@{SEED_DOMAIN}"
            message_id = f"seed.{i}@{SEED_DOMAIN}"
            subject = f"VPN certificate error on laptop {i}"
            name = f"Seeded User {i}"
            batch["requesters"].append((i, name, stamp))
            batch["identities"].append((i, i, "email", address))
            batch["tickets"].append(
                (i, status, "incident", None, _PRIORITIES[i % len(_PRIORITIES)], "service-desk",
                 "service-desk", 1.0, "email", "email", subject, i, None, stamp,
                 closed_at or stamp, closed_at)
            )  # fmt: skip
            batch["contacts"].append(
                (i, i, "email", "in", message_id, stamp, address, name,
                 "servicedesk@example.com", subject, _TEXT.format(i=i), "human",
                 "message/rfc822", None)
            )  # fmt: skip
            batch["message_ids"].append((message_id, i))
            batch["participants"].append((i, address))
            detail = json.dumps({"thread_reason": "new", "group": "service-desk"})
            batch["events"].append((i, i, stamp, "created", detail))
            payload = json.dumps({"to": address, "ticket_ref": f"SD-{i}"})
            batch["outbox"].append(
                (i, "email.ack", i, address, f"ack:{i}:{address}", payload, "done", 1, stamp,
                 None, None, stamp, stamp)
            )  # fmt: skip
        yield batch


def seed(db: Path, count: int) -> int:
    """Add ``count`` tickets to the database at ``db`` (created if missing); returns the total."""
    upgrade_schema(db)
    engine = sa.create_engine(f"sqlite:///{db.resolve()}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB while seeding
            conn.commit()
            first = max(_next_id(conn, t) for t in (requesters, tickets, contacts, events, outbox))
            conn.commit()
            done = 0
            started = time.perf_counter()
            sql = {name: _insert_sql(name) for name in _COLUMNS}
            for batch in _rows(first, count, datetime.now(UTC)):
                for name, rows in batch.items():
                    conn.exec_driver_sql(sql[name], rows)
                done += len(batch["tickets"])
                if done % COMMIT_EVERY == 0 or done == count:
                    conn.commit()
                    log.info("seeded %d tickets (%.0f s)", done, time.perf_counter() - started)
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            total = int(conn.execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one())
            conn.commit()
    finally:
        engine.dispose()
    return total


# The same rows as ``_rows`` makes, written by PostgreSQL from ``generate_series`` (``:first``,
# ``:last``, ``:count`` bound); ``age`` spreads creation over two years, oldest first.
_PG_SEED = {
    "requesters": "INSERT INTO requesters (id, name, created_at) "
    "SELECT i, 'Seeded User ' || i, {at} FROM {series}",
    "identities": "INSERT INTO identities (id, requester_id, kind, value) "
    "SELECT i, i, 'email', 'user' || i || '@{domain}' FROM {series}",
    "tickets": "INSERT INTO tickets (id, status, kind, category, priority, owner, group_name, "
    "tier, channel, last_channel, subject, requester_id, parent_id, created_at, updated_at, "
    "closed_at) SELECT i, (ARRAY{statuses})[1 + i % {nstatuses}], 'incident', NULL, "
    "(ARRAY{priorities})[1 + i % {npriorities}], 'service-desk', 'service-desk', 1.0, 'email', "
    "'email', 'VPN certificate error on laptop ' || i, i, NULL, {at}, {at}, "
    "CASE WHEN (ARRAY{statuses})[1 + i % {nstatuses}] = 'closed' "
    "THEN {at} + interval '1 hour' * (1 + i % 72) END FROM {series}",
    "contacts": "INSERT INTO contacts (id, ticket_id, channel, direction, external_id, "
    "received_at, from_addr, from_name, recipient, subject, text, auto, raw_type, raw) "
    "SELECT i, i, 'email', 'in', 'seed.' || i || '@{domain}', {at}, "
    "'user' || i || '@{domain}', 'Seeded User ' || i, 'servicedesk@example.com', "
    "'VPN certificate error on laptop ' || i, replace(:text, '{{i}}', i::text), 'human', "
    "'message/rfc822', NULL FROM {series}",
    "message_ids": "INSERT INTO message_ids (message_id, ticket_id) "
    "SELECT 'seed.' || i || '@{domain}', i FROM {series}",
    "participants": "INSERT INTO participants (ticket_id, address) "
    "SELECT i, 'user' || i || '@{domain}' FROM {series}",
    "events": "INSERT INTO events (id, ticket_id, at, type, detail) "
    "SELECT i, i, {at}, 'created', "
    """'{{"thread_reason": "new", "group": "service-desk"}}'::json FROM {series}""",
    "outbox": "INSERT INTO outbox (id, kind, ticket_id, recipient, idempotency_key, payload, "
    "status, attempts, next_attempt_at, locked_until, last_error, created_at, done_at) "
    "SELECT i, 'email.ack', i, 'user' || i || '@{domain}', "
    "'ack:' || i || chr(58) || 'user' || i || '@{domain}', json_build_object('to', 'user' || i || "
    "'@{domain}', 'ticket_ref', 'SD-' || i), 'done', 1, {at}, NULL, NULL, {at}, {at} "
    "FROM {series}",
}
_PG_SEQUENCES = ("requesters", "identities", "tickets", "contacts", "events", "outbox")


def _pg_statements() -> Iterator[tuple[str, str]]:
    def array(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(f"'{v}'" for v in values) + "]"

    fill = {
        "series": "generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i",
        "at": "(now() - interval '730 days' * ((:last + 1 - i)::float8 / (:count + 1)))",
        "domain": SEED_DOMAIN,
        "statuses": array(_STATUSES),
        "nstatuses": str(len(_STATUSES)),
        "priorities": array(_PRIORITIES),
        "npriorities": str(len(_PRIORITIES)),
    }
    for name, sql in _PG_SEED.items():
        if set(_COLUMNS[name]) - {c.name for c in _TABLES[name].columns}:
            raise RuntimeError(f"{name}: schema changed: update the seeder")
        yield name, sql.format(**fill)


def seed_postgres(url: str, count: int) -> int:
    """Add ``count`` tickets to the (migrated) PostgreSQL database at ``url``; returns the total.

    One transaction per table; the tables' own indexes are kept (what the gateway will use)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            first = max(_next_id(conn, t) for t in (requesters, tickets, contacts, events, outbox))
        last = first + count - 1
        started = time.perf_counter()
        for name, sql in _pg_statements():
            with engine.begin() as conn:
                text = _TEXT if name == "contacts" else None
                params = {"first": first, "last": last, "count": count}
                conn.execute(sa.text(sql), {**params, **({"text": text} if text else {})})
            log.info("seeded %s (%.0f s)", name, time.perf_counter() - started)
        with engine.begin() as conn:
            for name in _PG_SEQUENCES:
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
            conn.execute(sa.text("ANALYZE"))
            return int(conn.execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one())
    finally:
        engine.dispose()


def seed_url(url: str, count: int) -> int:
    """``seed`` for a ``sqlite:///`` URL, ``seed_postgres`` for a ``postgresql://`` one."""
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        assert path, "an in-memory SQLite database cannot be seeded for another process"
        return seed(Path(path), count)
    return seed_postgres(url, count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="SQLite file (created if missing)")
    parser.add_argument("--tickets", type=int, default=1_000_000, help="how many to add")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    total = seed(args.db, args.tickets)
    elapsed = time.perf_counter() - started
    size = args.db.stat().st_size / 2**20
    print(f"seeded {args.tickets:,} tickets in {elapsed:.1f} s; {total:,} in {args.db}")
    print(f"database file: {size:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
