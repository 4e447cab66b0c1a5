"""RFC 5321's limits and Postfix's defaults, against the real SMTP channel over real sockets.

Each test names the abuse it guards against:

- command lines: 512 octets (RFC 5321 4.5.3.1.4); longer gets ``500`` and the session goes on;
- text lines: 1000 octets (4.5.3.1.6) at least; spoc takes lines up to 1 MiB on purpose (mail
  with unwrapped HTML), a longer one is refused, never stored, never a crash;
- recipients: at least 100 (4.5.3.1.8), at most 1000 (Postfix's ``smtpd_recipient_limit``),
  beyond ``452 4.5.3``;
- errors: 20 without a delivered message (Postfix's ``smtpd_hard_error_limit``), then
  ``421 4.7.0`` and the connection closed; our own 451 (storage down) does not count;
- SMTP smuggling (SEC Consult, 2023): end-of-data look-alikes other than bare LF (the bare-LF
  ones are in ``tests/integration/test_smtp_channel.py``) never split one message into two;
- slow senders: a slowloris trickling DATA a byte at a time is cut off by the DATA deadline,
  one trickling a command line by the command timeout, each with ``421 4.4.2``;
- connections: at most 50 per client address (Postfix's
  ``smtpd_client_connection_count_limit``), beyond ``421 4.7.0``; another address still gets
  in; loopback is exempt by default, as Postfix exempts ``$mynetworks``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from channels.smtp import SMTPChannel
from normalizer.intake import TemporaryIntakeError
from tests.integration.test_smtp_channel import RecordingIntake, _command, message
from tests.support.smtp_channel import DESK, StartChannel, channel_starter

pytestmark = pytest.mark.reliability

Session = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_session(port: int, local_host: str = "127.0.0.1") -> Session:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local_host, 0))
    assert (await reader.readline()).startswith(b"220 ")
    assert (await _command(reader, writer, b"EHLO client.test\r\n")).startswith(b"250 ")
    return reader, writer


async def start_mail(session: Session) -> None:
    reader, writer = session
    assert (await _command(reader, writer, b"MAIL FROM:<alice@example.org>\r\n")).startswith(b"250")
    assert (await _command(reader, writer, f"RCPT TO:<{DESK}>\r\n".encode())).startswith(b"250")


async def send_data(session: Session, body: bytes) -> bytes:
    reader, writer = session
    assert (await _command(reader, writer, b"DATA\r\n")).startswith(b"354")
    return await _command(reader, writer, body + b".\r\n")


async def close(session: Session) -> None:
    session[1].close()
    try:
        await session[1].wait_closed()
    except ConnectionError:
        pass


@pytest.fixture
def intake() -> RecordingIntake:
    return RecordingIntake()


@pytest.fixture
async def start_channel(intake: RecordingIntake) -> AsyncIterator[StartChannel]:
    """A channel with spoc's defaults for every limit but the ones a test overrides."""
    async with channel_starter(intake) as start:
        yield start


@pytest.fixture
async def channel(start_channel: StartChannel) -> SMTPChannel:
    return await start_channel()


@pytest.fixture
async def sessions() -> AsyncIterator[list[Session]]:
    opened: list[Session] = []
    yield opened
    for session in opened:
        await close(session)


# --- command and text lines ----------------------------------------------------------------------


async def test_a_512_octet_command_line_is_taken_and_a_longer_one_gets_500_not_a_hang_up(
    channel: SMTPChannel,
) -> None:
    """Guards against a server that buffers unbounded command lines or drops the session."""
    session = await open_session(channel.port)
    reader, writer = session
    padding = 512 - len(b"NOOP \r\n")
    assert (await _command(reader, writer, b"NOOP " + b"x" * padding + b"\r\n")).startswith(b"250")
    # aiosmtpd counts without the CRLF, so 514 octets still pass: liberal by two, harmless.
    reply = await _command(reader, writer, b"NOOP " + b"x" * (padding + 3) + b"\r\n")
    assert reply == b"500 Command line too long\r\n"
    reply = await _command(reader, writer, b"NOOP " + b"x" * 200_000 + b"\r\n")
    assert reply == b"500 Command line too long\r\n"
    assert (await _command(reader, writer, b"NOOP\r\n")).startswith(b"250")
    await close(session)


async def test_text_lines_of_1000_octets_and_up_to_1_mib_are_stored_a_longer_one_is_refused(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    """Guards against refusing legal 1000-octet lines, or real mail's long HTML lines (spoc's
    documented 1 MiB), and against a line beyond that being stored or ending the session."""
    big = await start_channel(max_message_bytes=4 << 20)
    session = await open_session(big.port)
    rfc_line = b"y" * 998  # 1000 octets with its CRLF
    html_line = b"<p>" + b"z" * ((1 << 20) - 9) + b"</p>"  # 1 MiB with its CRLF
    over = b"w" * ((1 << 20) + 1)
    for n, line in enumerate((rfc_line, html_line)):
        await start_mail(session)
        raw = message(msgid=f"<line{n}@client.test>").replace(b"It is on fire.", line)
        assert (await send_data(session, raw)).startswith(b"250 2.0.0 Ok: queued as")
        assert line + b"\r\n" in intake.contacts[-1].raw
    await start_mail(session)
    raw = message(msgid="<over@client.test>").replace(b"It is on fire.", over)
    reply = await send_data(session, raw)
    assert reply[:1] == b"5", reply
    assert len(intake.contacts) == 2
    assert (await _command(*session, b"NOOP\r\n")).startswith(b"250")
    await close(session)


# --- recipients -------------------------------------------------------------------------------


async def test_100_recipients_are_accepted_and_beyond_1000_the_answer_is_452(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    """Guards against a recipient cap under RFC 5321's 100 (spoc's was 50) and against none."""
    session = await open_session(channel.port)
    reader, writer = session
    await start_mail(session)
    desk_names = [DESK, "helpdesk@example.com", "cs@example.com", "postmaster@example.com"]
    replies = [
        await _command(reader, writer, f"RCPT TO:<{desk_names[n % 4]}>\r\n".encode())
        for n in range(1, 1000)
    ]
    assert all(r.startswith(b"250 2.1.5") for r in replies), {r for r in replies}
    assert await _command(reader, writer, f"RCPT TO:<{DESK}>\r\n".encode()) == (
        b"452 4.5.3 Too many recipients\r\n"
    )
    assert (await send_data(session, message())).startswith(b"250 2.0.0")
    [contact] = intake.contacts
    assert set(contact.recipients) == set(desk_names)
    await close(session)


# --- errors -----------------------------------------------------------------------------------


async def test_twenty_errors_without_a_delivery_end_the_session_with_421(
    channel: SMTPChannel,
) -> None:
    """Guards against a client probing addresses (or fuzzing) forever on one connection."""
    session = await open_session(channel.port)
    reader, writer = session
    await start_mail(session)
    for n in range(19):
        reply = await _command(reader, writer, f"RCPT TO:<user{n}@elsewhere.test>\r\n".encode())
        assert reply.startswith(b"550 5.7.1"), (n, reply)
    writer.write(b"RCPT TO:<last@elsewhere.test>\r\n")
    await writer.drain()
    assert await reader.readline() == b"550 5.7.1 Relaying denied\r\n"
    assert await asyncio.wait_for(reader.readline(), 10) == b"421 4.7.0 Too many errors\r\n"
    assert await asyncio.wait_for(reader.read(), 10) == b""
    await close(session)


async def test_a_delivered_message_forgives_the_errors_before_it(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    """Postfix counts errors "without delivering mail": a busy MTA's session is not cut off."""
    session = await open_session(channel.port)
    reader, writer = session
    for round_ in range(3):
        await start_mail(session)
        for n in range(15):
            reply = await _command(reader, writer, f"RCPT TO:<u{n}@elsewhere.test>\r\n".encode())
            assert reply.startswith(b"550"), (round_, n, reply)
        raw = message(msgid=f"<forgiven{round_}@client.test>")
        assert (await send_data(session, raw)).startswith(b"250 2.0.0")
    assert len(intake.contacts) == 3
    await close(session)


async def test_our_own_451_while_storage_is_down_never_counts_as_a_client_error(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    """Guards against cutting off the MTA that is retrying through a storage outage."""
    intake.fail_with = TemporaryIntakeError("database unavailable")
    session = await open_session(channel.port)
    for n in range(25):
        await start_mail(session)
        reply = await send_data(session, message(msgid=f"<down{n}@client.test>"))
        assert reply.startswith(b"451 4.3.0"), (n, reply)
    intake.fail_with = None
    await start_mail(session)
    assert (await send_data(session, message(msgid="<up@client.test>"))).startswith(b"250 2.0.0")
    await close(session)


# --- SMTP smuggling ------------------------------------------------------------------------------

SMUGGLED = (
    b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<servicedesk@example.com>\r\nDATA\r\n"
    b"From: ceo@example.com\r\nSubject: smuggled\r\nMessage-ID: <evil@x>\r\n\r\nwire money\r\n"
)
# End-of-data look-alikes from the SEC Consult research that are not bare LF; the bare-LF
# ones (\n.\n, \r\n.\n, \n.\r\n, \r.\r\n) are tested in tests/integration/test_smtp_channel.py.
LOOK_ALIKES = [
    b"\r\n.\r",
    b"\r.\r",
    b"\n.\r",
    b"\r.\n",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
    b"\r\n. \r\n",
    b"\r\n.\r\r\n",
]


@pytest.mark.parametrize("look_alike", LOOK_ALIKES, ids=repr)
async def test_an_end_of_data_look_alike_never_splits_a_message_in_two(
    channel: SMTPChannel, intake: RecordingIntake, look_alike: bytes
) -> None:
    session = await open_session(channel.port)
    await start_mail(session)
    body = message()[:-2] + look_alike + SMUGGLED
    assert (await send_data(session, body)).startswith(b"250 2.0.0 Ok: queued as SD-1")
    assert (await _command(*session, b"NOOP\r\n")).startswith(b"250")  # not desynchronised
    [contact] = intake.contacts
    assert contact.subject == "Printer on fire"
    assert b"Subject: smuggled" in contact.raw and b"wire money" in contact.raw
    await close(session)


async def test_the_real_end_of_data_split_over_tcp_segments_still_ends_the_message(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    """The other half of the smuggling fix: a strict terminator must still be found when the
    client's writes cut it apart."""
    session = await open_session(channel.port)
    reader, writer = session
    await start_mail(session)
    assert (await _command(reader, writer, b"DATA\r\n")).startswith(b"354")
    for piece in (message()[:-2], b"\r", b"\n.", b"\r", b"\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    assert (await reader.readline()).startswith(b"250 2.0.0 Ok: queued as SD-1")
    assert len(intake.contacts) == 1
    await close(session)


# --- slow senders --------------------------------------------------------------------------------


async def trickle_until_closed(
    session: Session, payload: bytes, every: float, give_up_after: float = 20.0
) -> bytes:
    """Write ``payload`` a byte at a time until the server closes (or ``give_up_after``
    seconds passed); what it said meanwhile."""
    reader, writer = session
    said = b""
    give_up = time.monotonic() + give_up_after
    for byte in payload:
        if time.monotonic() > give_up:
            return said
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(1024), every)
        except TimeoutError:
            continue
        said += chunk
        if not chunk:
            return said
    return said + await asyncio.wait_for(reader.read(), 10)


async def test_a_slowloris_on_data_is_cut_off_by_the_data_deadline(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    """Guards against one client holding a session (and a connection slot) for as long as it
    keeps trickling: aiosmtpd's timer restarts on every command, so without a DATA deadline
    only the command timeout (here a minute) would ever end it."""
    channel = await start_channel(idle_timeout_seconds=60, data_timeout_seconds=1.5)
    session = await open_session(channel.port)
    await start_mail(session)
    assert (await _command(*session, b"DATA\r\n")).startswith(b"354")
    started = time.monotonic()
    said = await trickle_until_closed(session, message() * 100, every=0.2)
    elapsed = time.monotonic() - started
    print(f"slowloris on DATA cut off after {elapsed:.2f}s (data_timeout_seconds 1.5)")
    assert said == b"421 4.4.2 Timeout exceeded\r\n"
    assert elapsed < 15
    assert intake.contacts == []
    await close(session)


async def test_a_message_within_the_data_deadline_leaves_the_idle_timer_running_afresh(
    start_channel: StartChannel, intake: RecordingIntake
) -> None:
    """The deadline ends with the reply: the next command has the whole idle timeout again."""
    channel = await start_channel(idle_timeout_seconds=60, data_timeout_seconds=1.0)
    session = await open_session(channel.port)
    await start_mail(session)
    assert (await send_data(session, message())).startswith(b"250 2.0.0")
    await asyncio.sleep(1.5)  # past the data deadline, well within the idle timeout
    assert (await _command(*session, b"NOOP\r\n")).startswith(b"250")
    await close(session)


async def test_a_session_sending_commands_outlives_its_idle_timeout_and_ends_once_it_is_idle(
    start_channel: StartChannel,
) -> None:
    """The idle timer is moved, not re-created, on each command. Guards against a timer that
    fires at an old deadline although commands came since (cutting a busy session), and
    against one that, fired early, does not re-arm for the moved deadline (a session held open
    for good: the last NOOP comes while the timer armed before it is still pending)."""
    channel = await start_channel(idle_timeout_seconds=1.0)
    session = await open_session(channel.port)
    started = time.monotonic()
    while time.monotonic() - started < 3.0:  # three idle timeouts, never idle for one
        assert (await _command(*session, b"NOOP\r\n")).startswith(b"250")
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.3)
    assert (await _command(*session, b"NOOP\r\n")).startswith(b"250")
    last_command = time.monotonic()
    reader, _ = session
    assert await asyncio.wait_for(reader.read(), 10) == b"421 4.4.2 Timeout exceeded\r\n"
    assert 0.9 < time.monotonic() - last_command < 5
    await close(session)


async def test_a_command_line_trickled_a_byte_at_a_time_is_cut_off_by_the_command_timeout(
    start_channel: StartChannel,
) -> None:
    channel = await start_channel(idle_timeout_seconds=1.5)
    session = await open_session(channel.port)
    started = time.monotonic()
    said = await trickle_until_closed(session, b"MAIL FROM:<" + b"a" * 400, every=0.2)
    elapsed = time.monotonic() - started
    print(f"slowloris on a command line cut off after {elapsed:.2f}s (idle_timeout_seconds 1.5)")
    assert said == b"421 4.4.2 Timeout exceeded\r\n"
    assert elapsed < 15
    await close(session)


# --- connection caps -----------------------------------------------------------------------------


async def test_the_51st_connection_from_one_address_gets_421_and_another_address_gets_in(
    start_channel: StartChannel, sessions: list[Session]
) -> None:
    """Guards against one client (a slowloris, a botnet node) taking every session slot.
    Loopback is exempt by default (Postfix's ``$mynetworks``), so the test exempts nothing."""
    channel = await start_channel(client_limit_exceptions=())
    for _ in range(50):
        sessions.append(await open_session(channel.port))
    reader, writer = await asyncio.open_connection("127.0.0.1", channel.port)
    assert await reader.readline() == b"421 4.7.0 Too many connections from your address\r\n"
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    sessions.append(await open_session(channel.port, local_host="127.0.0.2"))
    # one of the first address's sessions ends: its slot is free again
    await close(sessions.pop(0))
    deadline = time.monotonic() + 10
    while True:
        reader, writer = await asyncio.open_connection("127.0.0.1", channel.port)
        greeting = await reader.readline()
        if greeting.startswith(b"220 ") or time.monotonic() > deadline:
            break
        writer.close()
    assert greeting.startswith(b"220 "), greeting
    writer.close()


async def test_loopback_is_exempt_from_the_per_client_cap_by_default(
    channel: SMTPChannel, sessions: list[Session]
) -> None:
    """A local proxy or load generator (as Postfix exempts ``$mynetworks``)."""
    for _ in range(55):
        sessions.append(await open_session(channel.port))
