"""The IMAP channel against a real Dovecot on 127.0.0.1 and a real router (SQLite and PostgreSQL).

Each test gets a mailbox of its own on the module's Dovecot, appends real messages with a real
IMAP client, runs an ``IMAPChannel`` in the test's loop and checks what the database and the
server's folders hold afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import smtplib
from collections.abc import Iterator

import pytest

from channels.imap.session import MailboxSession
from channels.smtp import SMTPChannel, SMTPChannelSettings
from normalizer.contact import Contact
from normalizer.intake import IntakeResult, TemporaryIntakeError
from router.router import Router
from tests.integration.imap_support import (
    DESK,
    Desk,
    MemoryQuarantine,
    desk,
    dovecot,
    mailbox,
    mailbox_settings,
    message,
    start_dovecot,
    wait_for,
)
from tests.support.dovecot import Dovecot

__all__ = ["desk", "dovecot", "mailbox"]  # fixtures

PROCESSED, FAILED = "spoc/processed", "spoc/failed"


def folder_empty(server: Dovecot, user: str, folder: str = "INBOX") -> bool:
    return server.messages(user, folder) == []


async def test_messages_become_contacts_and_are_moved_unread_after_commit(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    raws = [message(f"boot {n}") for n in range(3)]
    for raw in raws:
        dovecot.append(mailbox, raw)
    channel = desk.channel(mailbox_settings(dovecot, mailbox))

    await channel.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert [subject for _, subject in desk.contacts()] == ["boot 0", "boot 1", "boot 2"]
    assert dovecot.messages(mailbox, PROCESSED) == raws
    assert all(b"\\Seen" not in flags for flags in dovecot.flags(mailbox, PROCESSED))
    uidvalidity = dovecot.uidvalidity(mailbox, "INBOX")
    # The checkpoint is saved right after the move: the INBOX can be empty a moment before.
    await wait_for(lambda: desk.checkpoint(mailbox) == (uidvalidity, 3), "checkpoint at UID 3")


async def test_a_message_appended_while_idling_is_taken_in_without_polling(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    # poll_interval_seconds is an hour: only IDLE can bring the second message in.
    channel = desk.channel(mailbox_settings(dovecot, mailbox))
    await channel.start()
    await wait_for(lambda: channel.cycles >= 1, "the first (empty) cycle")

    dovecot.append(mailbox, message("arrived during idle"))

    await wait_for(lambda: len(desk.contacts()) == 1, "the contact from IDLE")
    assert desk.contacts()[0][1] == "arrived during idle"


async def test_mail_announced_while_a_cycle_ran_is_taken_in_without_waiting_for_idle(
    dovecot: Dovecot, mailbox: str, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the IMAP failover test once lost: a message arrives after a cycle's SEARCH, and
    the server announces it (EXISTS) in its answer to a later command of that cycle. IDLE does
    not announce it again, so a poller that goes straight into IDLE leaves it in the folder
    until the IDLE renewal (9 minutes by default; here an hour, like the poll interval)."""
    real_pending = MailboxSession.pending
    arrivals = [message("arrived while the cycle ran")]

    def pending_then_an_arrival(self: MailboxSession, after_uid: int) -> list[int]:
        uids = real_pending(self, after_uid)
        if arrivals:
            dovecot.append(mailbox, arrivals.pop())
            real_pending(self, after_uid)  # a later command: its answer announces the mail
        return uids

    monkeypatch.setattr(MailboxSession, "pending", pending_then_an_arrival)
    channel = desk.channel(mailbox_settings(dovecot, mailbox, idle_seconds=600))
    await channel.start()

    await wait_for(lambda: len(desk.contacts()) == 1, "the contact announced during the cycle")
    assert desk.contacts()[0][1] == "arrived while the cycle ran"


def test_uid_range_star_answering_the_last_message_below_n_is_ignored(
    dovecot: Dovecot, mailbox: str
) -> None:
    dovecot.append(mailbox, message("only one"))
    session = MailboxSession(mailbox_settings(dovecot, mailbox).server, "INBOX", ())
    session.open()
    try:
        session.select()
        # Dovecot answers "UID 5:*" with UID 1 (RFC 3501: * is the largest UID in use).
        with dovecot.client(mailbox) as imap:
            imap.select_folder("INBOX", readonly=True)
            assert imap.search(["UID", "5:*"]) == [1]
        assert session.pending(after_uid=4) == []
        assert session.pending(after_uid=0) == [1]
    finally:
        session.close()


async def test_max_messages_per_cycle_takes_the_rest_in_the_next_cycles(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    for n in range(5):
        dovecot.append(mailbox, message(f"batch {n}"))
    channel = desk.channel(mailbox_settings(dovecot, mailbox, max_messages_per_cycle=2))

    await channel.start()
    # Two, two and one: three cycles (without the cap one cycle takes all, then IDLE waits).
    await wait_for(lambda: channel.cycles >= 3, "three cycles")

    assert [s for _, s in desk.contacts()] == [f"batch {n}" for n in range(5)]


async def test_uidvalidity_change_takes_the_folder_in_again_without_duplicates_or_losses(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    folder = "Helpdesk"
    first = [message(f"before restore {n}") for n in range(4)]
    for raw in first:
        dovecot.append(mailbox, raw, folder)
    settings = mailbox_settings(dovecot, mailbox, folder=folder)
    channel = desk.channel(settings)
    await channel.start()
    await wait_for(lambda: len(desk.contacts()) == 4, "the first four contacts")
    await channel.stop(grace_seconds=10)
    old_uidvalidity = dovecot.uidvalidity(mailbox, folder)
    assert desk.checkpoint(mailbox) == (old_uidvalidity, 4)
    # A restore from backup: the folder comes back with new UIDs 1 and 2, one message already
    # taken in and one new. Under the old checkpoint (last UID 4) both would be skipped.
    dovecot.recreate_folder(mailbox, folder)
    restored = message("after restore")
    dovecot.append(mailbox, first[1], folder)
    dovecot.append(mailbox, restored, folder)
    new_uidvalidity = dovecot.uidvalidity(mailbox, folder)
    assert new_uidvalidity != old_uidvalidity

    again = desk.channel(settings)
    await again.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox, folder), "the restored folder emptied")

    subjects = [s for _, s in desk.contacts()]
    assert subjects == [f"before restore {n}" for n in range(4)] + ["after restore"]
    # The checkpoint is saved right after the move: the folder can be empty a moment before.
    await wait_for(lambda: desk.checkpoint(mailbox) == (new_uidvalidity, 2), "checkpoint at 2")


class FailingFor:
    """The real router, except that contacts with ``subject`` raise a bug-like error."""

    def __init__(self, router: Router, subject: str) -> None:
        self.router = router
        self.subject = subject
        self.attempts = 0

    async def submit(self, contact: Contact) -> IntakeResult:
        if contact.subject == self.subject:
            self.attempts += 1
            raise RuntimeError("converter bug")
        return await self.router.submit(contact)


async def test_a_message_failing_max_failures_times_is_quarantined_and_does_not_block(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    poison, after = message("poison"), message("behind the poison")
    dovecot.append(mailbox, poison)
    dovecot.append(mailbox, after)
    quarantine = MemoryQuarantine()
    intake = FailingFor(desk.router, "poison")
    settings = mailbox_settings(dovecot, mailbox, max_failures=3, poll_interval_seconds=0.05)
    # No IDLE wake-up needed: a failed message leaves a cycle that polls again at once.
    channel = desk.channel(settings, intake, quarantine)

    await channel.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert [s for _, s in desk.contacts()] == ["behind the poison"]
    assert intake.attempts == 3
    assert dovecot.messages(mailbox, FAILED) == [poison]
    assert dovecot.messages(mailbox, PROCESSED) == [after]
    [(raw, source, reason)] = quarantine.kept
    assert (raw, source) == (poison, f"imap:{mailbox}")
    assert "converter bug" in reason and "3 attempts" in reason


async def test_failed_attempts_count_across_pollers_so_the_next_gateway_gives_up_in_time(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    """The mailbox passes to another gateway after one failed attempt at a message: that one
    counts on from the database and gives up after the second (max_failures=2), not after two
    attempts of its own."""
    poison = message("poison")
    dovecot.append(mailbox, poison)
    first, second = FailingFor(desk.router, "poison"), FailingFor(desk.router, "poison")
    quarantine = MemoryQuarantine()
    # The first poller waits an hour before it tries a failed message again: it is stopped
    # (the instance goes away) after one attempt.
    settings = mailbox_settings(dovecot, mailbox, max_failures=2)
    leaving = desk.channel(settings, first, quarantine)
    await leaving.start()
    await wait_for(lambda: first.attempts == 1, "one failed attempt")
    await leaving.stop(5)

    taking_over = desk.channel(
        dataclasses.replace(settings, poll_interval_seconds=0.05), second, quarantine
    )
    await taking_over.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert (first.attempts, second.attempts) == (1, 1)
    assert dovecot.messages(mailbox, FAILED) == [poison]
    [(_, _, reason)] = quarantine.kept
    assert "2 attempts" in reason


class DatabaseDownFor:
    """The real router behind a database that is unavailable for the first ``times`` submits."""

    def __init__(self, router: Router, times: int) -> None:
        self.router = router
        self.left = times

    async def submit(self, contact: Contact) -> IntakeResult:
        if self.left > 0:
            self.left -= 1
            raise TemporaryIntakeError("database unavailable: connection refused")
        return await self.router.submit(contact)


async def test_a_database_outage_counts_against_no_message(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    raw = message("during the outage")
    dovecot.append(mailbox, raw)
    intake = DatabaseDownFor(desk.router, times=3)
    quarantine = MemoryQuarantine()
    settings = mailbox_settings(dovecot, mailbox, max_failures=2, reconnect_max_seconds=0.2)
    channel = desk.channel(settings, intake, quarantine)

    await channel.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert intake.left == 0
    assert [s for _, s in desk.contacts()] == ["during the outage"]
    assert dovecot.messages(mailbox, PROCESSED) == [raw]
    assert dovecot.messages(mailbox, FAILED) == [] and quarantine.kept == []


async def test_a_message_the_router_refuses_goes_to_failed_at_once(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    senderless = b"Subject: no sender at all\r\nMessage-ID: <nosender@x.example>\r\n\r\nhi\r\n"
    dovecot.append(mailbox, senderless)
    dovecot.append(mailbox, message("fine"))
    quarantine = MemoryQuarantine()
    channel = desk.channel(mailbox_settings(dovecot, mailbox), quarantine=quarantine)

    await channel.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert [s for _, s in desk.contacts()] == ["fine"]
    assert dovecot.messages(mailbox, FAILED) == [senderless]
    [(raw, _, reason)] = quarantine.kept
    assert raw == senderless and reason.startswith("refused:")


async def test_without_a_quarantine_a_failed_message_is_kept_in_the_failed_folder(
    dovecot: Dovecot, mailbox: str, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    senderless = b"Subject: nobody\r\nMessage-ID: <nobody@x.example>\r\n\r\nhi\r\n"
    dovecot.append(mailbox, senderless)
    channel = desk.channel(mailbox_settings(dovecot, mailbox), quarantine=None)

    with caplog.at_level(logging.ERROR, logger="channels.imap.channel"):
        await channel.start()
        await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert dovecot.messages(mailbox, FAILED) == [senderless]
    assert "not in any quarantine" in caplog.text


@pytest.mark.parametrize("mode", ["tls", "starttls"])
async def test_logs_in_over_tls_and_starttls_trusting_the_configured_ca(
    dovecot: Dovecot, mailbox: str, desk: Desk, mode: str
) -> None:
    dovecot.append(mailbox, message(f"over {mode}"))
    ca_file = str(dovecot.ca_file)
    if mode == "tls":
        settings = mailbox_settings(
            dovecot, mailbox, port=dovecot.tls_port, tls=True, ca_file=ca_file
        )
    else:
        settings = mailbox_settings(dovecot, mailbox, starttls=True, ca_file=ca_file)
    channel = desk.channel(settings)

    await channel.start()
    await wait_for(lambda: len(desk.contacts()) == 1, f"the contact over {mode}")


async def test_a_certificate_from_an_untrusted_ca_is_refused(
    dovecot: Dovecot, mailbox: str, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot.append(mailbox, message("must not arrive"))
    settings = mailbox_settings(dovecot, mailbox, port=dovecot.tls_port, tls=True)  # system CAs
    channel = desk.channel(settings)

    with caplog.at_level(logging.WARNING, logger="channels.imap.channel"):
        await channel.start()
        await wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, "the TLS refusal")

    assert desk.contacts() == []
    assert len(dovecot.messages(mailbox, "INBOX")) == 1


@pytest.fixture(scope="module")
def plain_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that advertises neither IDLE nor MOVE (an older or stricter server)."""
    server = start_dovecot(capabilities="IMAP4rev1 LITERAL+ UIDPLUS")
    try:
        yield server
    finally:
        server.stop()


async def test_without_idle_and_move_it_polls_and_copies_then_expunges(
    plain_dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    user = mailbox
    plain_dovecot.append(user, message("first poll"))
    settings = mailbox_settings(plain_dovecot, user, poll_interval_seconds=0.1)
    channel = desk.channel(settings)
    await channel.start()
    await wait_for(lambda: len(desk.contacts()) == 1, "the first contact")

    plain_dovecot.append(user, message("second poll"))

    await wait_for(lambda: len(desk.contacts()) == 2, "the contact found by polling")
    await wait_for(lambda: folder_empty(plain_dovecot, user), "INBOX emptied by UID EXPUNGE")
    assert len(plain_dovecot.messages(user, PROCESSED)) == 2
    with plain_dovecot.client(user) as imap:
        assert not imap.has_capability("MOVE") and not imap.has_capability("IDLE")


async def test_stop_while_idling_leaves_idle_and_logs_out(
    dovecot: Dovecot, mailbox: str, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    channel = desk.channel(mailbox_settings(dovecot, mailbox))
    await channel.start()
    await wait_for(lambda: channel.cycles >= 1, "the first cycle")

    with caplog.at_level(logging.INFO):
        await channel.stop(grace_seconds=10)

    assert f"IMAP {mailbox} stopped" in caplog.text
    assert "cancelled" not in caplog.text
    assert "Traceback" not in caplog.text


# --- part 2: the same message by SMTP and through a journal mailbox is one contact -----------

TRACE = (
    b"Return-Path: <alice@example.org>\r\n"
    b"Delivered-To: journal@example.com\r\n"
    b"Received: from mx2.example.com by imap.example.com; Tue, 1 Dec 2026 15:00:03 +0000\r\n"
)
SMTP_TRACE = (
    b"Received: from mail.example.org by mx1.example.com; Tue, 1 Dec 2026 15:00:01 +0000\r\n"
)


async def send_by_smtp(router: Router, raw: bytes) -> None:
    smtp = SMTPChannel(SMTPChannelSettings(desk_address=DESK, port=0), router)
    await smtp.start()
    try:

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
                client.sendmail("alice@example.org", [DESK], raw)

        await asyncio.to_thread(send)
    finally:
        await smtp.stop(grace_seconds=5)


@pytest.mark.parametrize("message_id", ["journal.1@mail.example.org", None], ids=["msgid", "none"])
async def test_the_same_message_by_smtp_and_through_a_journal_mailbox_is_one_contact(
    dovecot: Dovecot, mailbox: str, desk: Desk, message_id: str | None
) -> None:
    original = message("journaled", message_id=message_id)
    # What each path sees: SMTP gets it with the sender's Received; the journal copy has the
    # delivering server's trace fields on top, and comes back from IMAP with CRLF.
    await send_by_smtp(desk.router, SMTP_TRACE + original)
    dovecot.append(mailbox, TRACE + SMTP_TRACE + original)
    channel = desk.channel(mailbox_settings(dovecot, mailbox))

    await channel.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    contacts = desk.contacts()
    assert [s for _, s in contacts] == ["journaled"]
    if message_id is None:
        assert contacts[0][0].startswith("sha256-")
    assert len(dovecot.messages(mailbox, PROCESSED)) == 1


async def test_a_message_over_max_message_bytes_goes_to_failed_unfetched(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    big = message("huge attachment") + b"x" * 4000 + b"\r\n"
    small = message("small")
    dovecot.append(mailbox, big)
    dovecot.append(mailbox, small)
    quarantine = MemoryQuarantine()
    settings = mailbox_settings(dovecot, mailbox, max_message_bytes=len(small) + 100)
    channel = desk.channel(settings, quarantine=quarantine)

    await channel.start()
    await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX to be emptied")

    assert [s for _, s in desk.contacts()] == ["small"]
    assert dovecot.messages(mailbox, FAILED) == [big]
    assert quarantine.kept == []  # never fetched, so nothing to keep but the folder copy


async def test_idle_is_reissued_after_idle_seconds_even_when_nothing_arrives(
    dovecot: Dovecot, mailbox: str, desk: Desk
) -> None:
    # Each renewal leaves IDLE (DONE) and runs a cycle before the next IDLE: cycles count them.
    channel = desk.channel(mailbox_settings(dovecot, mailbox, idle_seconds=0.3))

    await channel.start()

    await wait_for(lambda: channel.cycles >= 4, "three IDLE renewals")
    assert desk.contacts() == []


async def test_a_second_poller_of_the_same_mailbox_waits_until_the_first_stops(
    dovecot: Dovecot, mailbox: str, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mailbox_settings(dovecot, mailbox, poll_interval_seconds=0.1)
    first, second = desk.channel(settings), desk.channel(settings)
    await first.start()
    await wait_for(lambda: first.cycles >= 1, "the first poller's first cycle")

    with caplog.at_level(logging.INFO, logger="channels.imap.channel"):
        await second.start()
        await wait_for(lambda: "another gateway polls this mailbox" in caplog.text, "the wait")
        assert second.cycles == 0
        await first.stop(grace_seconds=10)
        dovecot.append(mailbox, message("for the second poller"))
        # Only the second poller runs now: it took the lock over and empties the folder.
        await wait_for(lambda: folder_empty(dovecot, mailbox), "INBOX emptied by the second")

    assert [s for _, s in desk.contacts()] == ["for the second poller"]


async def test_a_refused_login_is_logged_as_an_error_and_is_not_fatal(
    dovecot: Dovecot, mailbox: str, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot.append(mailbox, message("waits for the right password"))
    # The first retry comes after 1 s; the test has seen what it needs by then.
    settings = dataclasses.replace(
        mailbox_settings(dovecot, mailbox, reconnect_max_seconds=60.0), password="wrong-password"
    )
    channel = desk.channel(settings)

    with caplog.at_level(logging.ERROR, logger="channels.imap.channel"):
        await channel.start()
        await wait_for(lambda: "LoginError" in caplog.text, "the refused login")

    assert "reconnecting in" in caplog.text
    assert channel.running  # the poller lives on and logs in again after the delay
    assert desk.contacts() == []
    assert "wrong-password" not in caplog.text
    assert len(dovecot.messages(mailbox, "INBOX")) == 1


async def test_after_the_server_restarts_the_poller_reconnects_and_goes_on(
    mailbox: str, desk: Desk
) -> None:
    server = start_dovecot()
    try:
        server.append(mailbox, message("before the restart"))
        channel = desk.channel(mailbox_settings(server, mailbox, reconnect_max_seconds=0.5))
        await channel.start()
        await wait_for(lambda: len(desk.contacts()) == 1, "the first contact")

        await asyncio.to_thread(server.restart)  # the IDLE connection is cut
        server.append(mailbox, message("after the restart"))

        await wait_for(lambda: len(desk.contacts()) == 2, "the contact after reconnecting")
        await channel.stop(grace_seconds=10)
    finally:
        server.stop()
    assert [s for _, s in desk.contacts()] == ["before the restart", "after the restart"]
