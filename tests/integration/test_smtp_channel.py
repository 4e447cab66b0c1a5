"""The inbound SMTP channel against real clients: stdlib smtplib (in a thread) and raw sockets.

Every test runs a real ``SMTPChannel`` in the test's loop on 127.0.0.1 port 0 with a recording
intake in place of the router.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import channels.smtp
from channels.smtp import SMTPChannel
from normalizer.contact import Channel, Contact
from normalizer.email import ParsedEmail, contact_from_email
from normalizer.intake import (
    ContactRejectedError,
    IntakeResult,
    QuarantineReceipt,
    TemporaryIntakeError,
)
from tests.support.smtp_channel import ALIASES, DESK, StartChannel, channel_starter


@dataclass
class RecordingIntake:
    """Stores every contact; ``fail_with`` makes the next submits raise instead."""

    contacts: list[Contact] = field(default_factory=list)
    fail_with: BaseException | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event | None = None

    async def submit(self, contact: Contact) -> IntakeResult:
        self.entered.set()
        if self.release is not None:
            await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.contacts.append(contact)
        n = len(self.contacts)
        return IntakeResult(
            ticket_ref=f"SD-{n}",
            ticket_id=n,
            contact_id=n,
            created=True,
            duplicate=False,
            thread_reason="new",
        )


@dataclass
class Conversion:
    raw: bytes
    kwargs: dict[str, Any]


@pytest.fixture
def intake() -> RecordingIntake:
    return RecordingIntake()


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[Conversion]:
    """Every call the channel makes to the converter, with the exact bytes it passed."""
    seen: list[Conversion] = []

    def recording(raw: bytes | ParsedEmail, **kwargs: Any) -> Contact:  # parsed on the loop
        seen.append(Conversion(raw.raw if isinstance(raw, ParsedEmail) else raw, kwargs))
        return contact_from_email(raw, **kwargs)

    monkeypatch.setattr(channels.smtp, "contact_from_email", recording)
    return seen


@pytest.fixture
async def start_channel(intake: RecordingIntake) -> AsyncIterator[StartChannel]:
    async with channel_starter(intake, max_message_bytes=64 * 1024) as start:
        yield start


@pytest.fixture
async def channel(start_channel: StartChannel) -> SMTPChannel:
    return await start_channel()


def message(
    subject: str = "Printer on fire", msgid: str = "<m1@client.test>", headers: str = ""
) -> bytes:
    return (
        f"{headers}From: Alice <alice@example.org>\r\nTo: {DESK}\r\nSubject: {subject}\r\n"
        f"Message-ID: {msgid}\r\n\r\nIt is on fire.\r\n"
    ).encode()


@dataclass
class Transaction:
    mail: tuple[int, bytes]
    rcpts: list[tuple[int, bytes]]
    data: tuple[int, bytes] | None


def _transact(
    port: int,
    mail_from: str,
    rcpts: list[str],
    data: bytes | None,
    *,
    mail_options: tuple[str, ...] = (),
    repeat: int = 1,
) -> list[Transaction]:
    """One SMTP session: ``repeat`` transactions of MAIL, raw RCPT args, DATA (if any 250)."""
    results = []
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.command_encoding = "utf-8"  # lets the address tricks include non-ASCII
    try:
        client.ehlo("client.test")
        for _ in range(repeat):
            mail = client.docmd("MAIL", f"FROM:<{mail_from}> {' '.join(mail_options)}".rstrip())
            replies = [client.docmd("RCPT", f"TO:{rcpt}") for rcpt in rcpts]
            result = None
            if data is not None and any(code == 250 for code, _ in replies):
                result = client.data(data)
            elif mail[0] == 250:
                client.rset()
            results.append(Transaction(mail, replies, result))
    finally:
        try:
            client.quit()  # may be answered 421 when the channel is stopping
        except smtplib.SMTPServerDisconnected:
            client.close()
    return results


async def transact(
    port: int,
    rcpts: list[str],
    data: bytes | None = None,
    mail_from: str = "alice@example.org",
    **kwargs: Any,
) -> Transaction:
    [result] = await asyncio.to_thread(_transact, port, mail_from, rcpts, data, **kwargs)
    return result


async def test_message_to_desk_is_submitted_and_answered_with_its_ticket_ref(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    result = await transact(channel.port, [f"<{DESK}>"], message())
    assert result.rcpts == [(250, b"2.1.5 Ok")]
    assert result.data == (250, b"2.0.0 Ok: queued as SD-1")
    [contact] = intake.contacts
    assert contact.recipients == (DESK,)
    assert contact.envelope_sender == "alice@example.org"
    assert contact.channel is Channel.EMAIL


async def test_message_to_an_alias_records_the_alias_as_recipient(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    result = await transact(channel.port, ["<HelpDesk@Example.COM>"], message())
    assert result.data is not None and result.data[0] == 250
    assert intake.contacts[0].recipients == ("helpdesk@example.com",)


async def test_converter_gets_the_exact_bytes_our_addresses_and_loop_marker(
    channel: SMTPChannel, conversions: list[Conversion]
) -> None:
    await transact(channel.port, [f"<{DESK}>", "<cs@example.com>"], message())
    [seen] = conversions
    assert seen.raw == message()
    assert seen.kwargs["recipients"] == (DESK, "cs@example.com")
    assert set(seen.kwargs["our_addresses"]) == {DESK, *ALIASES}
    assert seen.kwargs["loop_marker"] == DESK
    assert seen.kwargs["received_at"].tzinfo is not None


async def test_null_sender_reaches_the_converter_as_empty_envelope_sender(
    channel: SMTPChannel, conversions: list[Conversion]
) -> None:
    result = await transact(channel.port, [f"<{DESK}>"], message(), mail_from="")
    assert result.data is not None and result.data[0] == 250
    assert conversions[0].kwargs["envelope_sender"] == ""


async def test_recipient_in_another_domain_is_refused_as_relaying(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    result = await transact(channel.port, ["<bob@elsewhere.test>"], message())
    assert result.rcpts == [(550, b"5.7.1 Relaying denied")]
    assert result.data is None
    assert intake.contacts == []


async def test_unknown_mailbox_in_our_domain_is_refused(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    result = await transact(channel.port, ["<ceo@example.com>"], message())
    assert result.rcpts[0][0] == 550
    assert intake.contacts == []


@pytest.mark.parametrize(
    ("rcpt", "recorded"),
    [
        ("<postmaster@example.com>", "postmaster@example.com"),
        ("<PostMaster@Example.COM>", "postmaster@example.com"),
        ("<postmaster>", "postmaster@example.com"),  # RFC 5321 4.5.1: no domain needed
    ],
)
async def test_postmaster_at_our_domains_is_accepted_as_rfc_5321_requires(
    channel: SMTPChannel, intake: RecordingIntake, rcpt: str, recorded: str
) -> None:
    result = await transact(channel.port, [rcpt], message())
    assert result.rcpts == [(250, b"2.1.5 Ok")]
    assert result.data is not None and result.data[0] == 250
    assert intake.contacts[0].recipients == (recorded,)


async def test_postmaster_elsewhere_is_still_relaying(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    result = await transact(channel.port, ["<postmaster@elsewhere.test>"], message())
    assert result.rcpts == [(550, b"5.7.1 Relaying denied")]
    assert intake.contacts == []


async def test_abuse_is_accepted_only_when_configured(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    closed = await start_channel()
    result = await transact(closed.port, ["<abuse@example.com>"], message())
    assert result.rcpts[0][0] == 550
    opened = await start_channel(accept_abuse=True)
    result = await transact(opened.port, ["<abuse@example.com>"], message())
    assert result.data is not None and result.data[0] == 250
    assert intake.contacts[0].recipients == ("abuse@example.com",)


@pytest.mark.parametrize(
    "rcpt",
    [
        '<"servicedesk@example.com"@evil.com>',
        '"servicedesk@example.com"@evil.com',
        "<servicedesk@example.com@evil>",
        "servicedesk@example.com@evil",
        "<servicedesk%evil.com@example.com>",
        "<servicedesk%example.com@evil.com>",
        "<@example.com:victim@evil.com>",
        "<servicedesk@example.com>@evil.com",
        "<servicedesk@example.com,victim@evil.com>",
        "<victim@evil.com> <servicedesk@example.com>",
        "<servicedesk@example.com.>",
        "<servicedesk@example.com.evil.com>",
        "<servicedesk@[127.0.0.1]>",
        "<servicedesk\\@example.com@evil.com>",
        "<\u017fervicedesk@example.com>",  # long s: casefolds to "s", must not match
        "<servicedes\u212a@example.com>",  # Kelvin sign: lower() gives "k", must not match
    ],
)
async def test_address_tricks_never_pass_as_the_desk(
    channel: SMTPChannel, intake: RecordingIntake, rcpt: str
) -> None:
    result = await transact(channel.port, [rcpt], message(), mail_options=("SMTPUTF8",))
    [(code, _)] = result.rcpts
    assert 500 <= code < 600
    assert result.data is None
    assert intake.contacts == []


async def test_source_route_to_the_desk_is_accepted_as_the_bare_desk_address(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    result = await transact(channel.port, ["<@relay.test:servicedesk@example.com>"], message())
    assert result.data is not None and result.data[0] == 250
    assert intake.contacts[0].recipients == (DESK,)


async def test_recipients_over_the_cap_get_452(start_channel: StartChannel) -> None:
    channel = await start_channel(max_recipients=2)
    result = await transact(
        channel.port, [f"<{DESK}>", "<cs@example.com>", "<helpdesk@example.com>"]
    )
    assert [code for code, _ in result.rcpts] == [250, 250, 452]
    assert result.rcpts[2][1] == b"4.5.3 Too many recipients"


async def test_declared_size_over_the_limit_gets_552(channel: SMTPChannel) -> None:
    result = await transact(channel.port, [f"<{DESK}>"], mail_options=("SIZE=999999999",))
    assert result.mail[0] == 552


async def test_ehlo_advertises_size_8bitmime_and_smtputf8(channel: SMTPChannel) -> None:
    def ehlo() -> dict[str, str]:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=10) as client:
            client.ehlo("client.test")
            return dict(client.esmtp_features)

    features = await asyncio.to_thread(ehlo)
    assert features["size"] == str(64 * 1024)
    assert "8bitmime" in features and "smtputf8" in features


async def test_message_over_the_limit_gets_552_and_is_not_submitted(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    big = message() + b"x" * 900 + b"\r\n"
    big *= 80
    result = await transact(channel.port, [f"<{DESK}>"], big)
    assert result.data is not None and result.data[0] == 552
    assert intake.contacts == []


async def test_more_than_30_received_headers_get_554(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    hops = "".join(
        f"Received: from hop{i}.test by mx.test; Sun, 22 Nov 2026\r\n" for i in range(31)
    )
    result = await transact(channel.port, [f"<{DESK}>"], message(headers=hops))
    assert result.data == (554, b"5.4.0 Too many hops")
    assert intake.contacts == []


async def test_30_received_headers_are_still_accepted(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    hops = "".join(
        f"Received: from hop{i}.test by mx.test; Sun, 22 Nov 2026\r\n" for i in range(30)
    )
    result = await transact(channel.port, [f"<{DESK}>"], message(headers=hops))
    assert result.data is not None and result.data[0] == 250


async def test_250_is_sent_only_after_submit_returned(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    # A raw socket, so nothing but the server's own bytes can tell us it answered.
    intake.release = asyncio.Event()
    reader, writer = await start_data(channel.port)
    try:
        writer.write(message() + b".\r\n")
        await intake.entered.wait()
        with pytest.raises(TimeoutError):  # submit has not returned: no reply may have come
            await asyncio.wait_for(reader.readline(), timeout=0.5)
        intake.release.set()
        reply = await asyncio.wait_for(reader.readline(), timeout=10)
        assert reply == b"250 2.0.0 Ok: queued as SD-1\r\n"
    finally:
        writer.close()
        await writer.wait_closed()


async def _expect(reader: asyncio.StreamReader, code: bytes) -> None:
    """Read reply lines until the last one (``NNN ``) and check it starts with ``code``."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout=10)
        if line[3:4] != b"-":
            assert line.startswith(code), line
            return


@pytest.mark.parametrize(
    "error", [TemporaryIntakeError("database is locked"), RuntimeError("bug in the router")]
)
async def test_intake_failure_gets_451_and_the_session_keeps_serving(
    channel: SMTPChannel, intake: RecordingIntake, error: Exception
) -> None:
    intake.fail_with = error

    def two_messages() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=10) as client:
            client.ehlo("client.test")
            client.mail("alice@example.org")
            client.rcpt(DESK)
            first = client.data(message())
            intake.fail_with = None
            client.mail("alice@example.org")
            client.rcpt(DESK)
            return first, client.data(message(msgid="<m2@client.test>"))

    first, second = await asyncio.to_thread(two_messages)
    assert first == (451, b"4.3.0 Temporary failure, try again later")
    assert second == (250, b"2.0.0 Ok: queued as SD-1")


@pytest.fixture
def crashing_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: bytes | ParsedEmail, **kwargs: Any) -> Contact:
        raise ValueError("unparseable")

    monkeypatch.setattr(channels.smtp, "contact_from_email", broken)


@pytest.mark.usefixtures("crashing_converter")
async def test_converter_crash_gets_451_not_500(channel: SMTPChannel) -> None:
    result = await transact(channel.port, [f"<{DESK}>"], message())
    assert result.data is not None and result.data[0] == 451


async def test_exception_in_any_hook_gets_451_not_500(
    channel: SMTPChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(address: str) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(channels.smtp, "fold_address", broken)
    result = await transact(channel.port, [f"<{DESK}>"])
    assert result.rcpts[0][0] == 451


async def test_large_message_is_converted_and_submitted(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    channel = await start_channel(max_message_bytes=2 * 1024 * 1024)
    big = message() + (b"y" * 998 + b"\r\n") * 400
    result = await transact(channel.port, [f"<{DESK}>"], big)
    assert result.data == (250, b"2.0.0 Ok: queued as SD-1")
    assert channel.conversions.converted_in_process == 1  # in the pool, not on this process
    assert len(intake.contacts) == 1
    assert intake.contacts[0].raw == big  # the exact bytes, put back after the conversion


async def test_rejected_contact_gets_550_with_a_one_line_reason(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    intake.fail_with = ContactRejectedError("no usable sender\r\n250 fake", field="from")
    result = await transact(channel.port, [f"<{DESK}>"], message())
    assert result.data == (550, b"5.6.0 no usable sender 250 fake")


@dataclass
class RecordingQuarantine:
    """Keeps what it is given; ``fail`` makes keep raise as a database outage would."""

    kept: list[tuple[bytes, str, str]] = field(default_factory=list)
    fail: bool = False

    async def keep(
        self, raw: bytes, *, source: str, reason: str, raw_type: str = "message/rfc822"
    ) -> QuarantineReceipt:
        if self.fail:
            raise TemporaryIntakeError("database down")
        self.kept.append((raw, source, reason))
        return QuarantineReceipt(id=len(self.kept), duplicate=False)


async def test_with_a_quarantine_a_rejected_contact_is_kept_and_answered_250(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    quarantine = RecordingQuarantine()
    channel = await start_channel(quarantine=quarantine)
    intake.fail_with = ContactRejectedError("no usable sender", field="from")
    result = await transact(channel.port, [f"<{DESK}>"], message())
    assert result.data == (250, b"2.0.0 Ok: kept for review as quarantine 1")
    assert quarantine.kept == [(message(), "smtp", "rejected: no usable sender")]


@pytest.mark.usefixtures("crashing_converter")
async def test_with_a_quarantine_a_converter_crash_is_kept_not_retried_forever(
    start_channel: StartChannel,
) -> None:
    quarantine = RecordingQuarantine()
    channel = await start_channel(quarantine=quarantine)
    result = await transact(channel.port, [f"<{DESK}>"], message())
    assert result.data is not None and result.data[0] == 250
    assert quarantine.kept[0][2] == "failed: ValueError: unparseable"


async def test_when_the_quarantine_cannot_commit_the_answer_is_451(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    channel = await start_channel(quarantine=RecordingQuarantine(fail=True))
    intake.fail_with = ContactRejectedError("no usable sender", field="from")
    result = await transact(channel.port, [f"<{DESK}>"], message())
    assert result.data is not None and result.data[0] == 451


async def test_connections_over_the_cap_get_421_and_are_closed(
    start_channel: StartChannel,
) -> None:
    channel = await start_channel(max_connections=1)
    reader1, writer1 = await asyncio.open_connection("127.0.0.1", channel.port)
    assert (await reader1.readline()).startswith(b"220 ")
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", channel.port)
    assert await reader2.readline() == b"421 4.7.0 Too many connections\r\n"
    assert await reader2.read() == b""
    writer2.close()
    writer1.write(b"QUIT\r\n")
    await writer1.drain()
    assert (await reader1.readline()).startswith(b"221")
    assert await reader1.read() == b""
    writer1.close()
    # the first session is gone, so a new one fits under the cap again
    reader3, writer3 = await asyncio.open_connection("127.0.0.1", channel.port)
    assert (await reader3.readline()).startswith(b"220 ")
    writer3.close()


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes
) -> bytes:
    writer.write(line)
    await writer.drain()
    reply = b""
    while not reply[3:4] == b" ":
        reply = await reader.readline()
        assert reply, "server closed the connection"
    return reply


@pytest.mark.parametrize("terminator", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"])
async def test_bare_lf_smuggling_yields_one_message(
    channel: SMTPChannel,
    intake: RecordingIntake,
    conversions: list[Conversion],
    terminator: bytes,
) -> None:
    smuggled = (
        b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<servicedesk@example.com>\r\nDATA\r\n"
        b"From: ceo@example.com\r\nSubject: smuggled\r\nMessage-ID: <evil@x>\r\n\r\nwire money\r\n"
    )
    body = message()[:-2] + terminator + smuggled + b".\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", channel.port)
    assert (await reader.readline()).startswith(b"220")
    await _command(reader, writer, b"EHLO client.test\r\n")
    assert (await _command(reader, writer, b"MAIL FROM:<alice@example.org>\r\n")).startswith(b"250")
    assert (await _command(reader, writer, b"RCPT TO:<servicedesk@example.com>\r\n")).startswith(
        b"250"
    )
    assert (await _command(reader, writer, b"DATA\r\n")).startswith(b"354")
    assert (await _command(reader, writer, body)).startswith(b"250 2.0.0 Ok: queued as SD-1")
    assert (await _command(reader, writer, b"QUIT\r\n")).startswith(b"221")
    writer.close()
    await writer.wait_closed()
    [contact] = intake.contacts
    assert contact.subject == "Printer on fire"
    [seen] = conversions
    assert b"Subject: smuggled" in seen.raw and b"wire money" in seen.raw


async def test_smtputf8_address_and_8bit_body_are_accepted(
    channel: SMTPChannel, intake: RecordingIntake, conversions: list[Conversion]
) -> None:
    raw = (
        "From: Jörg <jörg@exämple.de>\r\nTo: servicedesk@example.com\r\nSubject: Drucker kaputt\r\n"
        "Message-ID: <ü1@exämple.de>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nDer Drucker druckt nur noch Grüße.\r\n"
    ).encode()

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=10) as client:
            client.ehlo("client.test")
            assert client.mail("jörg@exämple.de", ["SMTPUTF8", "BODY=8BITMIME"])[0] == 250
            assert client.rcpt(DESK)[0] == 250
            return client.data(raw)

    reply = await asyncio.to_thread(send)
    assert reply[0] == 250
    assert conversions[0].raw == raw
    assert intake.contacts[0].envelope_sender == "jörg@exämple.de"


async def test_stop_waits_for_the_message_in_flight_and_refuses_new_connections(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    intake.release = asyncio.Event()
    port = channel.port
    client = asyncio.create_task(transact(port, [f"<{DESK}>"], message()))
    await intake.entered.wait()
    stopping = asyncio.create_task(channel.stop(grace_seconds=30))
    await asyncio.sleep(0)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert not stopping.done()
    intake.release.set()
    await stopping
    result = await client
    assert result.data == (250, b"2.0.0 Ok: queued as SD-1")


async def test_stop_tells_idle_sessions_421_and_closes_them(channel: SMTPChannel) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", channel.port)
    assert (await reader.readline()).startswith(b"220 ")
    await _command(reader, writer, b"EHLO client.test\r\n")
    await channel.stop(grace_seconds=1)
    assert await reader.readline() == b"421 4.3.2 Service shutting down\r\n"
    assert await reader.read() == b""
    writer.close()


async def test_idle_session_is_told_421_and_closed_after_the_idle_timeout(
    start_channel: StartChannel,
) -> None:
    channel = await start_channel(idle_timeout_seconds=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", channel.port)
    assert (await reader.readline()).startswith(b"220 ")
    assert await asyncio.wait_for(reader.read(), timeout=30) == b"421 4.4.2 Timeout exceeded\r\n"
    writer.close()


async def test_channel_reports_the_port_it_bound(channel: SMTPChannel) -> None:
    assert channel.port > 0


async def test_a_line_longer_than_rfc_5321_allows_is_still_accepted(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    long_line = b"<p>" + b"x" * 5000 + b"</p>"
    raw = message().replace(b"It is on fire.", long_line)
    result = await transact(channel.port, [f"<{DESK}>"], raw)
    assert result.data is not None and result.data[0] == 250
    assert long_line in intake.contacts[-1].raw


# --- the in-flight budget ([smtp] max_inflight_bytes) and the DATA reader --------------------
# One message over the budget is answered 451 4.3.1 and succeeds once retried; the budget is
# given back however a DATA exchange ends.

BUDGET = 64 * 1024
FILLER = b"x" * 70 + b"\r\n"


def sized(subject: str, size: int) -> bytes:
    """A message of about ``size`` bytes with its own Message-ID."""
    head = message(subject, msgid=f"<{subject.replace(' ', '-')}@client.test>")
    return head + FILLER * max(0, (size - len(head)) // len(FILLER))


async def budget_back_to_zero(channel: SMTPChannel) -> None:
    async with asyncio.timeout(10):
        while channel.budget.used:  # noqa: ASYNC110  (a counter, not an event, is what we check)
            await asyncio.sleep(0.01)


@pytest.fixture
async def small_budget(start_channel: StartChannel) -> SMTPChannel:
    return await start_channel(max_message_bytes=BUDGET, max_inflight_bytes=BUDGET)


async def test_message_beyond_the_budget_gets_451_and_succeeds_when_retried(
    small_budget: SMTPChannel, intake: RecordingIntake
) -> None:
    intake.release = asyncio.Event()
    first = asyncio.create_task(transact(small_budget.port, [f"<{DESK}>"], sized("one", 40_000)))
    await intake.entered.wait()  # the first message holds ~40 KB of the 64 KiB budget
    second = await transact(small_budget.port, [f"<{DESK}>"], sized("two", 40_000))
    assert second.data == (451, b"4.3.1 Insufficient system resources, try again later")
    assert small_budget.budget.refused == 1
    intake.release.set()
    one = await first
    assert one.data is not None and one.data[0] == 250
    await budget_back_to_zero(small_budget)
    again = await transact(small_budget.port, [f"<{DESK}>"], sized("two", 40_000))
    assert again.data is not None and again.data[0] == 250
    assert [c.subject for c in intake.contacts] == ["one", "two"]


async def test_declared_size_beyond_what_is_left_gets_451_at_data(
    small_budget: SMTPChannel, intake: RecordingIntake
) -> None:
    intake.release = asyncio.Event()
    first = asyncio.create_task(transact(small_budget.port, [f"<{DESK}>"], sized("one", 40_000)))
    await intake.entered.wait()
    with pytest.raises(smtplib.SMTPDataError) as refused:  # smtplib: DATA answered, not 354
        await transact(
            small_budget.port, [f"<{DESK}>"], sized("two", 100), mail_options=("SIZE=40000",)
        )
    assert refused.value.smtp_code == 451
    intake.release.set()
    await first
    await budget_back_to_zero(small_budget)


async def test_the_budget_is_given_back_after_replies_and_failures(
    small_budget: SMTPChannel, intake: RecordingIntake
) -> None:
    ok = await transact(small_budget.port, [f"<{DESK}>"], sized("fine", 30_000))
    assert ok.data is not None and ok.data[0] == 250
    assert small_budget.budget.used == 0
    too_big = await transact(small_budget.port, [f"<{DESK}>"], sized("huge", 2 * BUDGET))
    assert too_big.data is not None and too_big.data[0] == 552
    assert small_budget.budget.used == 0
    intake.fail_with = TemporaryIntakeError("database down")
    failed = await transact(small_budget.port, [f"<{DESK}>"], sized("down", 30_000))
    assert failed.data is not None and failed.data[0] == 451
    assert small_budget.budget.used == 0


async def start_data(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _expect(reader, b"220")
    for command, code in (
        (b"EHLO client.test", b"250 "),
        (b"MAIL FROM:<alice@example.org>", b"250"),
        (f"RCPT TO:<{DESK}>".encode(), b"250"),
        (b"DATA", b"354"),
    ):
        writer.write(command + b"\r\n")
        await _expect(reader, code)
    return reader, writer


async def test_the_budget_is_given_back_when_the_client_hangs_up_during_data(
    small_budget: SMTPChannel, intake: RecordingIntake
) -> None:
    _, writer = await start_data(small_budget.port)
    writer.write(sized("cut", 30_000))
    await writer.drain()
    async with asyncio.timeout(10):
        while small_budget.budget.used < 20_000:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    writer.close()
    await budget_back_to_zero(small_budget)
    assert intake.contacts == []


async def test_the_budget_is_given_back_when_a_slow_sender_times_out(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    channel = await start_channel(
        max_message_bytes=BUDGET, max_inflight_bytes=BUDGET, data_timeout_seconds=0.5
    )
    reader, writer = await start_data(channel.port)
    writer.write(sized("slow", 30_000))  # and then nothing: no final dot
    await writer.drain()
    try:
        async with asyncio.timeout(10):
            await reader.read()  # the server hangs up at the DATA deadline
        await budget_back_to_zero(channel)
    finally:
        writer.close()
    assert intake.contacts == []


async def test_leading_dots_are_unstuffed_and_the_message_kept_byte_for_byte(
    small_budget: SMTPChannel, conversions: list[Conversion]
) -> None:
    raw = message() + b".hidden dot\r\n..two dots\r\nbare\nLF and bare\rCR\r\n" + FILLER * 3
    result = await transact(small_budget.port, [f"<{DESK}>"], raw)  # smtplib stuffs the dots
    assert result.data is not None and result.data[0] == 250
    assert conversions[0].raw == raw
