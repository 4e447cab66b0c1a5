"""``spoc replay FILE.eml…``: feed saved messages through the email intake path again.

Each file goes through the same converter and router as a message that arrived over SMTP,
addressed to the desk address. Re-ingesting is safe: a message already stored is reported as a
duplicate and changes nothing; automatic mail that matches no ticket is kept in the quarantine.
Acknowledgements it queues are sent by the next ``spoc serve``. On a terminal, stderr shows
progress (count, rate, time left) for many files (:mod:`gateway.progress`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.config import Config
from gateway.migrate import upgrade
from gateway.progress import progress, say
from gateway.triage import start_meaning_reader
from normalizer.email import contact_from_email
from normalizer.intake import IntakeError
from router.router import Router
from router.store import Store, is_sqlite


async def replay_files(config: Config, paths: Sequence[Path]) -> int:
    """Returns 0 when every file was stored (or already was), 1 when any failed."""
    url = config.database_url
    if is_sqlite(url):
        upgrade(url)
    settings = config.router_settings()
    store = Store.from_url(url)
    await store.start()
    meaning = await start_meaning_reader(config, settings)
    router = Router(store, settings, meaning=meaning)
    steps = config.mail_steps()
    failed = 0
    try:
        for path in progress(paths, total=len(paths), unit="file"):
            try:
                raw = path.read_bytes()
            except OSError as exc:
                say(f"{path}: cannot read: {exc.strerror}", error=True)
                failed += 1
                continue
            contact = contact_from_email(
                raw,
                recipients=(settings.desk_address,),
                our_addresses=settings.our_addresses,
                loop_marker=settings.desk_address,
                trusted_authserv_ids=settings.trusted_authserv_ids,
            )
            for step in steps:
                contact = step(contact)
            try:
                result = await router.submit(contact)
            except IntakeError as exc:
                say(f"{path}: not stored: {exc}", error=True)
                failed += 1
                continue
            if result.quarantine_id is not None:
                say(f"{path}: quarantine {result.quarantine_id} ({result.thread_reason})")
                continue
            outcome = (
                "duplicate" if result.duplicate else "created" if result.created else "appended"
            )
            say(f"{path}: {result.ticket_ref} ({outcome}, {result.thread_reason})")
    finally:
        await store.close()
    return 1 if failed else 0
