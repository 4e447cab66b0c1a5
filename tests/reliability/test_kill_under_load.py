"""Kill -9 the gateway during an SMTP load, restart: every message that got 250 is there, and the
clients resending everything make no duplicate.

Guards against: a 250 sent before the commit (a lost message after a crash), and an idempotency
key that does not survive a restart (a duplicate ticket when the MTA resends what it had no 250
for). One run per database (SQLite in ``tmp_path``; a fresh PostgreSQL database, migrated first).
Concurrent ``smtplib`` clients in threads send distinct messages over one session each; once
about a third of what is still unacknowledged got its 250 the gateway gets SIGKILL, and whatever
a client had not seen a 250 for counts as not acknowledged. The next gateway on the same
database takes the clients' resends of what is still unacknowledged, and is killed again, as
often as ``KILLS`` says (1 in CI, 5 with ``SPOC_RELIABILITY_FULL=1``). Finally every client
resends everything. Every tenth message has no Message-ID: its idempotency key is the synthetic
``sha256-…@spoc.invalid`` id of its bytes, so the same bytes resent must dedupe too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from normalizer.refs import format_ref
from router.store import is_sqlite
from tests.integration.test_serve_process import (
    build_message,
    http_get,
    inbound_contacts,
    start_gateway,
)
from tests.reliability.counts import scaled
from tests.reliability.smtp_load import Acks, Mail, duplicate_keys, send_each

CLIENTS = scaled(8, 16)
PER_CLIENT = scaled(60, 250)
KILLS = scaled(1, 5)
LOAD_SECONDS = scaled(30, 120)

# The default 120 s per test is too short for the full counts.
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(scaled(120, 1800))]


def mails_of(client: int) -> list[Mail]:
    sender = f"load{client}@example.org"
    mails = []
    for i in range(PER_CLIENT):
        key = f"crash load c{client} m{i}"
        message_id = None if i % 10 == 0 else f"c{client}.m{i}.crash@load.example.org"
        mails.append(Mail(key, sender, message_id, build_message(key, sender, message_id)))
    return mails


def run_clients(
    port: int, acks: Acks, skip: Collection[str] = frozenset()
) -> list[threading.Thread]:
    """Each client sends its mails but those in ``skip`` (already acknowledged: an MTA resends
    only what it had no 250 for)."""
    threads = [
        threading.Thread(
            target=send_each,
            args=(port, [m for m in mails_of(n) if m.key not in skip], acks),
            daemon=True,
        )
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + LOAD_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), f"an SMTP client is still running after {LOAD_SECONDS}s"


def load_and_kill(directory: Path, db_url: str, acked: Collection[str]) -> Acks:
    """Start a gateway, let the clients resend what is unacknowledged, SIGKILL it once about a
    third of that got its 250; the acknowledgements seen before the kill."""
    pending = CLIENTS * PER_CLIENT - len(acked)
    kill_after = max(1, pending // 3)
    gateway = start_gateway(directory, db_url)
    acks = Acks()
    try:
        threads = run_clients(gateway.ready.smtp_port, acks, skip=acked)
        deadline = time.monotonic() + LOAD_SECONDS
        while acks.count() < kill_after and time.monotonic() < deadline:
            if not any(thread.is_alive() for thread in threads):
                break
            time.sleep(0.005)
        os.kill(gateway.process.pid, signal.SIGKILL)
    finally:
        gateway.process.kill()  # reaps it
    join_all(threads)
    assert acks.count() >= kill_after, (
        f"only {acks.count()} acknowledged before the deadline; refusals {acks.refusals!r}, "
        f"errors {acks.errors!r}\n{gateway.process.log_tail()}"
    )
    assert not acks.refusals, acks.refusals
    assert acks.count() < pending, "the kill came after the load: nothing was interrupted"
    return acks


def assert_acknowledged_are_stored_once(
    db_url: str, acked: Mapping[str, str], all_mails: Mapping[str, Mail]
) -> None:
    by_external_id: defaultdict[str, list[int]] = defaultdict(list)
    by_subject: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
    for external_id, subject, ticket_id in inbound_contacts(db_url):
        by_external_id[external_id].append(ticket_id)
        by_subject[subject].append((external_id, ticket_id))
    for key, ref in acked.items():
        mail = all_mails[key]
        stored = by_subject[key]
        assert len(stored) == 1, f"{key!r} got 250 {ref} but is stored {len(stored)} times"
        external_id, ticket_id = stored[0]
        if mail.message_id is None:
            assert external_id.startswith("sha256-"), external_id
        else:
            assert external_id == mail.message_id
            assert by_external_id[mail.message_id] == [ticket_id]
        assert format_ref("SD", ticket_id) == ref


def test_messages_acknowledged_before_a_kill_survive_and_resending_makes_no_duplicate(
    tmp_path: Path, db_url: str
) -> None:
    if not is_sqlite(db_url):
        from gateway.migrate import upgrade

        upgrade(db_url)
    all_mails = {mail.key: mail for n in range(CLIENTS) for mail in mails_of(n)}

    # 1. Load and SIGKILL, KILLS times; each gateway gets the resends of what had no 250 yet.
    acked: dict[str, str] = {}
    for kill in range(KILLS):
        acks = load_and_kill(tmp_path / f"killed-{kill}", db_url, acked)
        acked.update(acks.refs)
        # 2. Everything acknowledged so far is there once, under the ref its 250 named.
        assert_acknowledged_are_stored_once(db_url, acked, all_mails)
    assert any(all_mails[key].message_id is None for key in acked)

    # 3. A last gateway: every client resends everything: all 250, the same refs, no duplicate.
    last = start_gateway(tmp_path / "last", db_url)
    try:
        assert http_get(last.ready.http_port, "/readyz")[0] == 200
        resent = Acks()
        join_all(run_clients(last.ready.smtp_port, resent))
        assert not resent.errors, resent.errors
        assert not resent.refusals, resent.refusals
        assert set(resent.refs) == set(all_mails)
        for key, ref in acked.items():
            assert resent.refs[key] == ref, f"{key!r} was {ref} before a kill"
        assert len(set(resent.refs.values())) == len(all_mails)  # each message its own ticket
        contacts = inbound_contacts(db_url)
        assert len(contacts) == len(all_mails)
        assert Counter(subject for _, subject, _ in contacts) == Counter(set(all_mails))
        assert duplicate_keys(db_url) == []
        assert last.process.stop(signal.SIGTERM) == 0
    finally:
        last.process.kill()
