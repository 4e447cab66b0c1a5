"""kill -9 an IMAP poller between fetch, commit and move: every message ends as exactly one
contact, and in the processed folder exactly once.

The poller runs in a process of its own (``imap_poller_child.py``, wired as ``spoc serve``
wires it) against the module's real Dovecot and a real database (SQLite and PostgreSQL). It
stops dead at the stage under test; the test SIGKILLs it, checks the half-done state, starts a
fresh poller and lets it finish. The last test does the same to ``spoc serve`` itself, killed
in the middle of a backlog.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.imap_support import PASSWORD, REPO_ROOT, dovecot, mailbox, message
from tests.integration.test_serve_process import (
    ServeProcess,
    child_environment,
    free_port,
    write_config,
)
from tests.support.dovecot import Dovecot
from tests.support.sql import query

__all__ = ["dovecot", "mailbox"]  # fixtures

WAIT_SECONDS = 30.0
PROCESSED = "spoc/processed"


def contacts(db_url: str) -> list[str]:
    try:
        rows = query(db_url, "SELECT subject FROM contacts")
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no tables yet
        return []
    return [str(r[0]) for r in rows]


def wait_until(condition: object, what: str, log: Path | None = None) -> None:
    assert callable(condition)
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
            pytest.fail(f"gave up waiting for {what} after {WAIT_SECONDS:.0f}s\n{tail}")
        time.sleep(0.05)


class Poller:
    """``imap_poller_child`` in a subprocess; its stdout and stderr go to ``log``."""

    def __init__(self, tmp: Path, db_url: str, server: Dovecot, user: str, stage: str) -> None:
        self.log = tmp / f"poller-{stage}-{time.monotonic_ns()}.log"
        args = [
            sys.executable,
            "-m",
            "tests.integration.imap_poller_child",
            db_url,
            str(server.port),
            user,
            PASSWORD,
            stage,
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                args, cwd=REPO_ROOT, env=child_environment(), stdout=out, stderr=out
            )

    def said(self, text: str) -> bool:
        if self.process.poll() is not None and text not in self.log.read_text(errors="replace"):
            pytest.fail(f"the poller exited {self.process.returncode}:\n{self.log.read_text()}")
        return text in self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=WAIT_SECONDS)


@pytest.fixture
def pollers() -> Iterator[list[Poller]]:
    started: list[Poller] = []
    yield started
    for poller in started:
        poller.kill()


def test_the_child_poller_stops_cleanly_on_sigterm(
    dovecot: Dovecot, mailbox: str, sqlite_url: str, tmp_path: Path, pollers: list[Poller]
) -> None:
    dovecot.append(mailbox, message("before sigterm"))
    poller = Poller(tmp_path, sqlite_url, dovecot, mailbox, "none")
    pollers.append(poller)
    wait_until(lambda: dovecot.messages(mailbox, "INBOX") == [], "INBOX emptied", poller.log)

    poller.process.send_signal(signal.SIGTERM)

    assert poller.process.wait(timeout=WAIT_SECONDS) == 0
    assert poller.said("STOPPED")
    assert contacts(sqlite_url) == ["before sigterm"]


@pytest.mark.parametrize("stage", ["fetched", "committed", "moved"])
def test_kill_9_between_fetch_commit_and_move_leaves_exactly_one_contact_per_message(
    dovecot: Dovecot,
    mailbox: str,
    db_url: str,
    tmp_path: Path,
    pollers: list[Poller],
    stage: str,
) -> None:
    raws = [message("crash 0"), message("crash 1", message_id=None), message("crash 2")]
    for raw in raws:
        dovecot.append(mailbox, raw)
    first = Poller(tmp_path, db_url, dovecot, mailbox, stage)
    pollers.append(first)
    wait_until(lambda: first.said(f"PAUSED {stage}"), f"the poller to pause at {stage}", first.log)

    first.process.send_signal(signal.SIGKILL)
    first.kill()

    # The half-done state the next poller inherits.
    inbox, processed = dovecot.messages(mailbox, "INBOX"), dovecot.messages(mailbox, PROCESSED)
    expected = {
        "fetched": ([], 3, 0),
        "committed": (["crash 0"], 3, 0),
        "moved": (["crash 0"], 2, 1),
    }[stage]
    assert (contacts(db_url), len(inbox), len(processed)) == expected

    second = Poller(tmp_path, db_url, dovecot, mailbox, "none")
    pollers.append(second)
    wait_until(lambda: dovecot.messages(mailbox, "INBOX") == [], "INBOX emptied", second.log)
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=WAIT_SECONDS) == 0

    assert sorted(contacts(db_url)) == ["crash 0", "crash 1", "crash 2"]
    assert sorted(dovecot.messages(mailbox, PROCESSED)) == sorted(raws)


def serve_with_imap(
    directory: Path, db_url: str, imap_toml: str, env: dict[str, str]
) -> ServeProcess:
    """``spoc serve`` on free ports with ``imap_toml`` added to its config, ready. A free port
    can be taken by another test before spoc binds it (the classifier takes seconds to load
    under load): then it starts again on fresh ports."""
    for _ in range(3):
        config = write_config(directory, db_url, free_port(), free_port())
        config.write_text(config.read_text() + imap_toml)
        process = ServeProcess.__new__(ServeProcess)
        process.log_path = directory / f"serve-{time.monotonic_ns()}.log"
        with process.log_path.open("wb") as out:
            process.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if process.wait_ready() is not None:
            return process
        if "address already in use" not in process.log_tail():
            break
    pytest.fail(f"spoc serve did not start:\n{process.log_tail()}")


def test_spoc_serve_killed_during_a_backlog_takes_every_message_in_exactly_once(
    dovecot: Dovecot, mailbox: str, sqlite_url: str, tmp_path: Path
) -> None:
    total = 40
    for n in range(total):
        dovecot.append(mailbox, message(f"backlog {n}", message_id=None if n % 5 == 0 else ""))
    imap = (
        f'\n[[imap]]\nname = "{mailbox}"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
        f'tls = false\nusername = "{mailbox}"\nmax_messages_per_cycle = 7\n'
    )
    env = {**child_environment(), "SPOC_IMAP_PASSWORD": PASSWORD}

    def serve() -> ServeProcess:
        return serve_with_imap(tmp_path, sqlite_url, imap, env)

    first = serve()
    try:
        wait_until(lambda: len(contacts(sqlite_url)) >= total // 3, "a third of the backlog")
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
    assert len(contacts(sqlite_url)) < total, "killed too late to prove anything"

    second = serve()
    try:
        wait_until(lambda: dovecot.messages(mailbox, "INBOX") == [], "INBOX emptied")
        assert second.stop(signal.SIGTERM) == 0
    finally:
        second.kill()

    counts = Counter(contacts(sqlite_url))
    assert counts == Counter({f"backlog {n}": 1 for n in range(total)})
    assert len(dovecot.messages(mailbox, PROCESSED)) == total
