"""CPU per contact of the router alone: ``Router.submit`` through the ``Store``.

No SMTP and no parsing: the contacts (new e-mail tickets, ~4 KB, the mix of
``bench/smtp_intake.py`` without the big ones) are converted before the clock starts, then
submitted ``--concurrency`` at a time, as the SMTP channel would. Prints this process's CPU
per contact (the writer thread's work, the loop's hand-offs, and with ``--triage on`` the
classifier thread's: reply stripping, tokenizer, embedding). To compare two commits, run it
from each tree in turn (``PYTHONPATH=DIR``, working directory DIR: ``git archive COMMIT | tar
-x -C DIR``). On SQLite by default; ``--database-url`` takes an empty database instead
(e.g. PostgreSQL: ``postgresql://...``; the schema is migrated first).

    python bench/ingest_cpu.py --contacts 3000 --warmup 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import smtp_intake as si  # bench/ is on sys.path when run as a script

from gateway.config.loading import load_config
from gateway.migrate import upgrade
from gateway.triage import start_meaning_reader
from normalizer.contact import Contact
from normalizer.email import contact_from_email
from router.router import Router
from router.store import Store


def converted_mails(mails: list[si.Mail]) -> list[Contact]:
    """The benchmark's mails as the SMTP channel hands them to the router."""
    return [
        contact_from_email(
            m.raw,
            recipients=(si.DESK,),
            envelope_sender=m.sender,
            received_at=datetime.now(UTC),
            our_addresses=frozenset({si.DESK}),
            loop_marker=si.DESK,
        )
        for m in mails
    ]


async def measure(
    contacts: int, warmup: int, concurrency: int, triage: str = "off", url: str | None = None
) -> tuple[float, float]:
    """(CPU ms per contact, contacts per second) for the timed contacts."""
    with tempfile.TemporaryDirectory(prefix="spoc-ingest-") as tmp:
        path = Path(tmp) / "config.toml"
        url = url or f"sqlite:///{tmp}/ingest.db"
        path.write_text(si.spoc_config(url, 2525, 8080, 2526, "shipped", triage))
        config = load_config(path)
        upgrade(config.database.url)
        store = Store.from_url(config.database.url)
        await store.start()
        settings = config.router_settings()
        reader = await start_meaning_reader(config, settings)
        router = Router(store, settings, meaning=reader)
        rnd = random.Random(1)
        run = f"ingest{os.getpid()}"
        mails = [si.build_mail(run, n, False, rnd) for n in range(warmup + contacts)]
        converted = converted_mails(mails)
        for contact in converted[:warmup]:
            await router.submit(contact)
        gate = asyncio.Semaphore(concurrency)

        async def one(contact: Contact) -> None:
            async with gate:
                await router.submit(contact)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(c) for c in converted[warmup:]))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await store.close()
    return 1000 * cpu / contacts, contacts / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--triage", choices=("on", "off"), default="off", help="the classifier")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    import router

    cpu_ms, rate = asyncio.run(
        measure(args.contacts, args.warmup, args.concurrency, args.triage, args.database_url)
    )
    print(f"router from {Path(router.__file__).parent}: "
          f"{cpu_ms:.3f} ms CPU per contact, {rate:.0f} contacts/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
