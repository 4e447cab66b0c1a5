"""Shared parts of the IMAP tests: a real Dovecot per module, a real router per test.

``dovecot`` (module scope) starts Debian's Dovecot on 127.0.0.1 (``tests/support/dovecot.py``);
a missing one skips, or fails under ``SPOC_REQUIRE_SERVICES=1``. ``mailbox`` gives each test a
login of its own on it. :class:`Desk` is a migrated database (the ``db_url`` fixture: SQLite
and PostgreSQL) with a real :class:`~router.router.Router` behind it, and builds
:class:`~channels.imap.IMAPChannel` objects the way ``spoc serve`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from channels.imap import IMAPChannel, IMAPMailboxSettings
from gateway.config import load_config
from gateway.config.sections import ImapMailbox
from gateway.migrate import upgrade
from gateway.serve import imap_mailbox_settings
from normalizer.intake import Intake, QuarantineReceipt
from router.mailboxes import MailboxCheckpoints, poller_lock
from router.router import Router
from router.store import Store
from tests.support.dovecot import HOST, Dovecot, DovecotUnavailable
from tests.support.services import require_service

REPO_ROOT = Path(__file__).resolve().parents[2]
DESK = "servicedesk@example.com"
PASSWORD = "imap-test-pw"
WAIT_SECONDS = 20.0

_users = iter(range(1, 10_000))
ROUTER_SETTINGS = load_config(REPO_ROOT / "config.toml", {}).router_settings()


def start_dovecot(capabilities: str | None = None) -> Dovecot:
    try:
        return Dovecot.start(PASSWORD, capabilities=capabilities)
    except DovecotUnavailable as exc:
        require_service(f"no Dovecot IMAP server for the tests: {exc}")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox() -> str:
    """A login of this test's own (and so an empty mailbox)."""
    return f"desk{next(_users)}"


@dataclass
class MemoryQuarantine:
    """The ``normalizer.intake.Quarantine`` protocol in memory: what was kept, and why."""

    kept: list[tuple[bytes, str, str]] = field(default_factory=list)

    async def keep(
        self, raw: bytes, *, source: str, reason: str, raw_type: str = "message/rfc822"
    ) -> QuarantineReceipt:
        for index, (seen, seen_source, _) in enumerate(self.kept, start=1):
            if (seen, seen_source) == (raw, source):
                return QuarantineReceipt(index, duplicate=True)
        self.kept.append((raw, source, reason))
        return QuarantineReceipt(len(self.kept), duplicate=False)


def mailbox_settings(dovecot: Dovecot, user: str, **overrides: Any) -> IMAPMailboxSettings:
    """Built as ``spoc serve`` builds them: from a validated ``[[imap]]`` table."""
    values: dict[str, Any] = {
        "name": user,
        "host": HOST,
        "port": dovecot.port,
        "tls": False,
        "username": user,
        "poll_interval_seconds": 3600.0,
        "reconnect_max_seconds": 1.0,
        "timeout_seconds": 10.0,
    }
    values.update(overrides)
    return imap_mailbox_settings(ImapMailbox(**values), dovecot.password, ROUTER_SETTINGS)


@dataclass
class Desk:
    """A real store and router on a migrated database."""

    url: str
    store: Store
    router: Router
    channels: list[IMAPChannel] = field(default_factory=list)

    def channel(
        self,
        settings: IMAPMailboxSettings,
        intake: Intake | None = None,
        quarantine: MemoryQuarantine | None = None,
    ) -> IMAPChannel:
        channel = IMAPChannel(
            settings,
            intake or self.router,
            MailboxCheckpoints(self.store),
            poller_lock(self.store, settings.name),
            quarantine,
        )
        self.channels.append(channel)
        return channel

    def contacts(self) -> list[tuple[str, str]]:
        """``(external_id, subject)`` of every inbound contact, in insertion order."""
        return self.store.run_sync(
            lambda conn: [
                (str(r[0]), str(r[1]))
                for r in conn.execute(
                    sa.text(
                        "SELECT external_id, subject FROM contacts WHERE direction = 'in' "
                        "ORDER BY id"
                    )
                )
            ]
        )

    def checkpoint(self, mailbox: str) -> tuple[int, int] | None:
        row = self.store.run_sync(
            lambda conn: conn.execute(
                sa.text("SELECT uidvalidity, last_uid FROM imap_checkpoints WHERE mailbox = :m"),
                {"m": mailbox},
            ).first()
        )
        return None if row is None else (int(row[0]), int(row[1]))


@pytest.fixture
async def desk(db_url: str) -> AsyncIterator[Desk]:
    upgrade(db_url)
    store = Store.from_url(db_url)
    await store.start()
    desk = Desk(db_url, store, Router(store, ROUTER_SETTINGS))
    try:
        yield desk
    finally:
        for channel in desk.channels:
            await channel.stop(grace_seconds=10)
        await store.close()


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], what: str, seconds: float = WAIT_SECONDS
) -> None:
    """Poll ``condition`` (bounded); fail naming ``what`` when it never holds."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {seconds:.0f}s")
        await asyncio.sleep(0.05)


def message(key: str, sender: str = "alice@example.org", message_id: str | None = "") -> bytes:
    """A small plain-text message to the desk; ``message_id=""`` derives one from ``key``."""
    if message_id == "":
        message_id = f"{key.replace(' ', '.')}@mail.example.org"
    headers = [
        f"From: Alice <{sender}>",
        f"To: {DESK}",
        f"Subject: {key}",
        "Date: Tue, 01 Dec 2026 15:00:00 +0000",
    ]
    if message_id is not None:
        headers.append(f"Message-ID: <{message_id}>")
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(headers) + f"\r\n\r\nMy laptop does not boot ({key}).\r\n").encode()
