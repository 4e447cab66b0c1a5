"""CPU per contact of the writer thread's own work, measured on one thread.

``Router.ingest`` for ``bench/smtp_intake.py``'s mix (10 % ~100 KB mails with a PDF, the
rest ~4 KB; a new requester and ticket each; acks as shipped), ``--batch`` contacts per
transaction as the store's group commit takes them, and one outbox claim per transaction as
the dispatcher, woken by those contacts, asks for. The contacts are converted and their
meanings read (``--triage on``) before the clock starts, and everything runs on this one
thread: no event loop, no hand-offs, no other thread contending for the GIL, so the figure
moves less with the machine's load than ``bench/ingest_cpu.py``'s. To compare two commits,
run it from each tree in turn (``PYTHONPATH=DIR``, working directory DIR).

    python bench/writer_cpu.py --contacts 2000 --warmup 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import smtp_intake as si  # bench/ is on sys.path when run as a script
from ingest_cpu import converted_mails
from sqlalchemy.engine import Connection

from gateway.config.loading import load_config
from gateway.migrate import upgrade
from gateway.triage import start_meaning_reader
from normalizer.contact import Contact
from router.meaning import Meaning, MeaningReader
from router.outbox import claim_due
from router.router import Router
from router.store import Store


def read_now(reader: MeaningReader, contact: Contact) -> Meaning:
    """The contact's reading, run at once (as the store runs it before the transaction)."""
    reading = reader.reading(contact)
    reading.run()
    return reading.meaning


async def measure(
    contacts: int, warmup: int, batch: int, triage: str, url: str | None, big: float
) -> float:
    """CPU ms per timed contact."""
    with tempfile.TemporaryDirectory(prefix="spoc-writer-") as tmp:
        path = Path(tmp) / "config.toml"
        url = url or f"sqlite:///{tmp}/writer.db"
        path.write_text(si.spoc_config(url, 2525, 8080, 2526, "shipped", triage))
        config = load_config(path)
        upgrade(config.database.url)
        store = Store.from_url(config.database.url)
        settings = config.router_settings()
        reader = await start_meaning_reader(config, settings)
        router = Router(store, settings)
        mails = si.build_mails(f"writer{os.getpid()}", warmup + contacts, big)
        converted = converted_mails(mails)
        meanings = [read_now(reader, c) if reader else None for c in converted]
        skip_locked = store.is_postgres

        def transaction(chunk: list[tuple[Contact, Meaning | None]]) -> None:
            def job(conn: Connection) -> None:
                for contact, meaning in chunk:
                    router.ingest(conn, contact, meaning)
                now = datetime.now(UTC)
                claim_due(conn, now=now, limit=20, lease_seconds=120, skip_locked=skip_locked)

            store.run_sync(job)

        pairs = list(zip(converted, meanings, strict=True))
        for start in range(0, warmup, batch):
            transaction(pairs[start : min(start + batch, warmup)])
        cpu = time.process_time()
        for start in range(warmup, len(pairs), batch):
            transaction(pairs[start : start + batch])
        cpu = time.process_time() - cpu
        store._writer.dispose()
        store._reader.dispose()
    return 1000 * cpu / contacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16, help="contacts per transaction")
    parser.add_argument("--triage", choices=("on", "off"), default="on", help="the classifier")
    parser.add_argument("--big", type=float, default=0.1, help="share of ~100 KB mails")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    import router

    cpu_ms = asyncio.run(
        measure(args.contacts, args.warmup, args.batch, args.triage, args.database_url, args.big)
    )
    print(f"router from {Path(router.__file__).parent}: "
          f"{cpu_ms:.3f} ms CPU per contact (the writer's work, one thread)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
