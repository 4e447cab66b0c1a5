"""``[[imap]]`` in a whole gateway: passwords from the environment, a mailbox without one stays
off (and the log says why), a polled message becomes a ticket that is acknowledged like mail
sent to the desk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.integration.gateway_harness import GatewayHarness, RelaySink
from tests.integration.imap_support import PASSWORD, dovecot, mailbox, message, wait_for
from tests.support.dovecot import Dovecot

__all__ = ["dovecot", "mailbox"]  # fixtures


def imap_table(name: str, server: Dovecot, user: str) -> str:
    return (
        f'[[imap]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {server.port}\n'
        f'tls = false\nusername = "{user}"\n'
    )


async def test_mailboxes_with_a_password_are_polled_and_one_without_stays_off(
    dovecot: Dovecot,
    mailbox: str,
    tmp_path: Path,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dovecot.append(mailbox, message("via the legacy mailbox"))
    dovecot.append("nopassword-box", message("must stay put"))
    extra = imap_table("legacy-helpdesk", dovecot, mailbox) + imap_table(
        "no-secret", dovecot, "nopassword-box"
    )
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(tmp_path, sqlite_url, sink, extra)
    harness.environ["SPOC_IMAP_LEGACY_HELPDESK_PASSWORD"] = PASSWORD
    caplog.set_level(logging.INFO)
    try:
        gateway = await harness.start()
        await wait_for(lambda: dovecot.messages(mailbox, "INBOX") == [], "INBOX emptied")
        acks = await harness.settle()
        assert [c.name for c in gateway.imap_channels] == ["imap:legacy-helpdesk"]
        assert "'no-secret' has no password: set SPOC_IMAP_NO_SECRET_PASSWORD" in caplog.text
        assert len(dovecot.messages("nopassword-box", "INBOX")) == 1
        status, page = await harness.api("GET", "/api/tickets")
        assert status == 200
        assert [t["subject"] for t in page["tickets"]] == ["via the legacy mailbox"]
        assert [m["To"] for m in acks] == ["alice@example.org"]
    finally:
        await harness.stop()
        await sink.stop()
    assert "IMAP legacy-helpdesk stopped" in caplog.text
    assert PASSWORD not in caplog.text
