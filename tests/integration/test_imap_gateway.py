"""``[[imap]]`` in a whole gateway: passwords from the environment, a mailbox without one stays
off (and the log says why), a polled message becomes a ticket that is acknowledged like mail
sent to the desk, and one written to the legacy mailbox's own address tells the requester the
desk's one address."""

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


async def test_mail_written_to_a_legacy_mailbox_tells_the_requester_the_one_address(
    dovecot: Dovecot, mailbox: str, tmp_path: Path, sqlite_url: str
) -> None:
    legacy = f"{mailbox}@oldco.example"
    written_there = message("printer jam").replace(
        b"To: servicedesk@example.com", f"To: {legacy}".encode()
    )
    journalled = message("vpn down")  # written to the desk, only journalled into the mailbox
    dovecot.append(legacy, written_there)
    dovecot.append(legacy, journalled)
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(tmp_path, sqlite_url, sink, imap_table("old-it", dovecot, legacy))
    harness.environ["SPOC_IMAP_OLD_IT_PASSWORD"] = PASSWORD
    try:
        await harness.start()
        await wait_for(lambda: dovecot.messages(legacy, "INBOX") == [], "INBOX emptied")
        acks = {m["Subject"]: m.get_content() for m in await harness.settle()}
        page = (await harness.api("GET", "/api/tickets"))[1]
        by_subject = {t["subject"]: await harness.ticket(t["ref"]) for t in page["tickets"]}
        assert by_subject["printer jam"]["contacts"][0]["to"] == legacy
        assert by_subject["vpn down"]["contacts"][0]["to"] == "servicedesk@example.com"
        [told] = [text for subject, text in acks.items() if "printer jam" in subject]
        assert f"Your message to {legacy} reached us" in told
        [not_told] = [text for subject, text in acks.items() if "vpn down" in subject]
        assert "one address now" not in not_told
        metrics = await harness.metrics()
        assert metrics[("spoc_legacy_contacts_total", frozenset({("address", legacy)}))] == 1
    finally:
        await harness.stop()
        await sink.stop()
