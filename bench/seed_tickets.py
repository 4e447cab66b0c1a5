"""Fill a spoc SQLite database with N old tickets, fast, for the "big database" benchmark.

Each seeded ticket gets what a real e-mail ticket leaves behind on the intake path: a requester
and its e-mail identity, the ticket, one inbound contact (about 300 bytes of text, no raw copy),
its Message-ID in ``message_ids``, the requester as participant, a ``created`` event and a
delivered ``email.ack`` outbox row. Creation dates are spread over the last two years and 80 %
of the tickets are resolved or closed.

The schema is created with ``spoc db upgrade`` (a subprocess: nothing here imports ``gateway``).
Rows go in with SQLAlchemy Core ``executemany`` in batches, a few transactions in all, with
``PRAGMA synchronous=OFF`` on the seeding connection only (the gateway sets FULL on its own).

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
