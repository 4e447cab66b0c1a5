"""Two ``spoc serve`` processes on one PostgreSQL poll one mailbox: one leader, and failover.

Each ``[[imap]]`` mailbox is polled by one gateway at a time (a PostgreSQL advisory lock held on
a connection of its own, ``router.mailboxes``). When the leader is killed with -9, its
connection closes with it, PostgreSQL drops the lock, and the waiting gateway -- which tries
the lock every ``LOCK_RETRY_SECONDS`` -- takes the mailbox over: a message delivered after the
kill is a contact within 30 s, and every message is exactly one contact.

The mailbox keeps the default ``poll_interval_seconds`` (60 s): before the waiting gateway
retried the lock on its own, shorter schedule, it retried only that often, and the takeover
could take a minute.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.migrate import upgrade
from tests.integration.imap_support import PASSWORD, dovecot, mailbox, message
from tests.integration.test_imap_crash import contacts, serve_with_imap, wait_until
from tests.integration.test_serve_process import (
    ServeProcess,
    child_environment,
)
from tests.support.dovecot import Dovecot

__all__ = ["dovecot", "mailbox"]  # fixtures

pytestmark = pytest.mark.postgres

FAILOVER_SECONDS = 30.0
WAITING = "another gateway polls this mailbox; waiting"


def serve(directory: Path, db_url: str, server: Dovecot, user: str) -> ServeProcess:
    directory.mkdir()
    imap = (
        f'\n[[imap]]\nname = "{user}"\nhost = "127.0.0.1"\nport = {server.port}\n'
        f'tls = false\nusername = "{user}"\n'
    )
    env = {**child_environment(), "SPOC_IMAP_PASSWORD": PASSWORD}
    return serve_with_imap(directory, db_url, imap, env)


def test_the_waiting_gateway_takes_the_mailbox_over_within_30_s_of_a_kill_9(
    dovecot: Dovecot, mailbox: str, pg_url: str, tmp_path: Path
) -> None:
    upgrade(pg_url)
    leader = serve(tmp_path / "a", pg_url, dovecot, mailbox)
    follower: ServeProcess | None = None
    try:
        dovecot.append(mailbox, message("before the second gateway"))
        wait_until(
            lambda: contacts(pg_url) == ["before the second gateway"],
            "the first mail",
            leader.log_path,
        )
        follower = serve(tmp_path / "b", pg_url, dovecot, mailbox)
        wait_until(lambda: WAITING in follower.log(), "the second gateway to wait")  # type: ignore[union-attr]

        dovecot.append(mailbox, message("while both run"))
        wait_until(lambda: len(contacts(pg_url)) == 2, "the mail while both run")
        assert "while both run" not in follower.log()

        os.kill(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        leader.kill()
        dovecot.append(mailbox, message("after the kill"))
        deadline = killed_at + FAILOVER_SECONDS
        while "after the kill" not in contacts(pg_url):
            assert time.monotonic() < deadline, follower.log_tail()
            time.sleep(0.05)
        took = time.monotonic() - killed_at
        print(f"failover: the mail delivered after kill -9 was a contact after {took:.1f}s")

        assert "took over the mailbox from another gateway" in follower.log()
        wait_until(lambda: dovecot.messages(mailbox, "INBOX") == [], "INBOX emptied")
        assert follower.stop(signal.SIGTERM) == 0
    finally:
        leader.kill()
        if follower is not None:
            follower.kill()

    assert Counter(contacts(pg_url)) == Counter(
        {"before the second gateway": 1, "while both run": 1, "after the kill": 1}
    )
    assert len(dovecot.messages(mailbox, "spoc/processed")) == 3
