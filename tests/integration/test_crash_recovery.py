"""Kill -9 the gateway during an SMTP load, restart: every message that got 250 is there, and the
clients resending everything make no duplicate.

One run per database (SQLite in ``tmp_path``; a fresh PostgreSQL database, migrated first).
Eight ``smtplib`` clients in threads send distinct messages over one session each; once about a
third are acknowledged the gateway gets SIGKILL, and whatever a client had not seen a 250 for
counts as not acknowledged. Every tenth message has no Message-ID: its idempotency key is the
synthetic ``sha256-…@spoc.invalid`` id of its bytes, so the same bytes resent must dedupe too.
"""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from normalizer.refs import format_ref
from router.store import engine_url, is_sqlite
from tests.integration.test_serve_process import (
    HOST,
    SOCKET_SECONDS,
    Gateway,
    build_message,
    http_get,
    inbound_contacts,
    ref_from_reply,
    send_mail,
    start_gateway,
)

CLIENTS = 8
PER_CLIENT = 60
KILL_AFTER_ACKS = CLIENTS * PER_CLIENT // 3
LOAD_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Mail:
    key: str  # also the Subject, unique per message
    sender: str
    message_id: str | None
    raw: bytes


def mails_of(client: int) -> list[Mail]:
    sender = f"load{client}@example.org"
    mails = []
    for i in range(PER_CLIENT):
        key = f"crash load c{client} m{i}"
        message_id = None if i % 10 == 0 else f"c{client}.m{i}.crash@load.example.org"
        mails.append(Mail(key, sender, message_id, build_message(key, sender, message_id)))
    return mails


class Acks:
    """What the clients saw: ticket refs of the 250s, and anything unexpected."""

    def __init__(self) -> None:
        self.refs: dict[str, str] = {}
        self.refusals: dict[str, tuple[int, bytes]] = {}
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    def record(self, mail: Mail, code: int, reply: bytes) -> None:
        with self._lock:
            if code == 250:
                self.refs[mail.key] = ref_from_reply(reply)
            else:
                self.refusals[mail.key] = (code, reply)

    def count(self) -> int:
        with self._lock:
            return len(self.refs)


def send_each(port: int, mails: list[Mail], acks: Acks) -> None:
    """One session, every mail in turn; a broken connection ends the client (not acknowledged)."""
    try:
        smtp = smtplib.SMTP(HOST, port, timeout=SOCKET_SECONDS)
    except OSError as exc:
        acks.errors.append(exc)
        return
    try:
        for mail in mails:
            code, reply = send_mail(smtp, mail.sender, mail.raw)
            acks.record(mail, code, reply)
    except (smtplib.SMTPException, OSError) as exc:
        acks.errors.append(exc)
    finally:
        smtp.close()


def run_clients(port: int, acks: Acks) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=send_each, args=(port, mails_of(n), acks), daemon=True)
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


def duplicate_keys(db_url: str) -> list[tuple[str, str, int]]:
    engine = sa.create_engine(engine_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT channel, external_id, count(*) FROM contacts "
                    "GROUP BY channel, external_id HAVING count(*) > 1"
                )
            ).all()
    finally:
        engine.dispose()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.process.kill()


def test_messages_acknowledged_before_a_kill_survive_and_resending_makes_no_duplicate(
    tmp_path: Path, db_url: str, gateways: list[Gateway]
) -> None:
    if not is_sqlite(db_url):
        from gateway.migrate import upgrade

        upgrade(db_url)
    all_mails = {mail.key: mail for n in range(CLIENTS) for mail in mails_of(n)}

    # 1. Load, and SIGKILL once about a third is acknowledged.
    first = start_gateway(tmp_path / "first", db_url)
    gateways.append(first)
    before_kill = Acks()
    threads = run_clients(first.ready.smtp_port, before_kill)
    deadline = time.monotonic() + LOAD_SECONDS
    while before_kill.count() < KILL_AFTER_ACKS and time.monotonic() < deadline:
        if not any(thread.is_alive() for thread in threads):
            break
        time.sleep(0.005)
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.kill()  # reaps it
    join_all(threads)

    acked = dict(before_kill.refs)
    assert before_kill.count() >= KILL_AFTER_ACKS, (
        f"only {len(acked)} acknowledged before the deadline; refusals {before_kill.refusals!r}, "
        f"errors {before_kill.errors!r}\n{first.process.log_tail()}"
    )
    assert not before_kill.refusals, before_kill.refusals
    assert len(acked) < len(all_mails), "the kill came after the load: nothing was interrupted"
    assert any(all_mails[key].message_id is None for key in acked)

    # 2. Restart on the same database: everything acknowledged is there, under the same ref.
    second = start_gateway(tmp_path / "second", db_url)
    gateways.append(second)
    assert http_get(second.ready.http_port, "/readyz")[0] == 200
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

    # 3. Every client resends everything: all 250, the same refs, no duplicate anywhere.
    resent = Acks()
    join_all(run_clients(second.ready.smtp_port, resent))
    assert not resent.errors, resent.errors
    assert not resent.refusals, resent.refusals
    assert set(resent.refs) == set(all_mails)
    for key, ref in acked.items():
        assert resent.refs[key] == ref, f"{key!r} was {ref} before the kill"
    assert len(set(resent.refs.values())) == len(all_mails)  # each message its own ticket
    contacts = inbound_contacts(db_url)
    assert len(contacts) == len(all_mails)
    assert Counter(subject for _, subject, _ in contacts) == Counter(set(all_mails))
    assert duplicate_keys(db_url) == []

    assert second.process.stop(signal.SIGTERM) == 0
