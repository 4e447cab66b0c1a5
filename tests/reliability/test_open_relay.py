"""The open-relay probe: 50 ways of naming a foreign mailbox, none of which spoc accepts.

Relay tricks that fooled mail servers before: the percent hack (``bob%elsewhere@us``), source
routes (``@us:bob@elsewhere``), quoted local parts holding an address, UUCP bang paths, and
domains that only look like ours (IDN, a combining accent, Cyrillic letters, our name as a
subdomain of someone else's). Each variant names the desk's own local part so a sloppy
comparison would match. Every one must be refused at RCPT (a 5xx), no DATA may be answered 250
and the intake must see nothing. Real sockets: the in-loop aiosmtpd channel and smtplib.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.smtp import SMTPChannel
from tests.integration.test_smtp_channel import RecordingIntake, message, transact
from tests.support.smtp_channel import DESK, channel_starter

pytestmark = pytest.mark.reliability

FOREIGN_DOMAINS = (
    "elsewhere.test",
    "EXAMPLE.NET",
    "example.com.elsewhere.test",  # our name as someone else's subdomain
    "evilexample.com",
    "xn--exmple-cua.com",  # exämple.com as IDNA
    "exämple.com",
    "exa\u0301mple.com",  # a combining accent
    "\u0435xample.com",  # a Cyrillic ie for the e
    "[192.0.2.1]",
    "[IPv6:2001:db8::1]",
)
FORMS = (
    "<servicedesk@{d}>",
    "<servicedesk%{d}@example.com>",  # the percent hack
    "<@example.com:servicedesk@{d}>",  # a source route through us
    '<"servicedesk@{d}"@example.com>',  # a quoted local part holding the address
    "<{d}!servicedesk@example.com>",  # a UUCP bang path
)
VARIANTS = [form.format(d=domain) for domain in FOREIGN_DOMAINS for form in FORMS]
assert len(VARIANTS) == 50


@pytest.fixture
def intake() -> RecordingIntake:
    return RecordingIntake()


@pytest.fixture
async def channel(intake: RecordingIntake) -> AsyncIterator[SMTPChannel]:
    async with channel_starter(intake, max_message_bytes=64 * 1024) as start:
        yield await start()


@pytest.mark.parametrize("rcpt", VARIANTS)
async def test_a_foreign_recipient_in_disguise_is_refused_at_rcpt(
    channel: SMTPChannel, intake: RecordingIntake, rcpt: str
) -> None:
    result = await transact(channel.port, [rcpt], message(msgid=f"<{abs(hash(rcpt))}@c.test>"))

    [(code, _text)] = result.rcpts
    assert 500 <= code < 600, f"{rcpt} answered {code} {_text!r}"
    assert result.data is None
    assert intake.contacts == []


async def test_the_desk_itself_is_still_accepted_beside_the_probe(
    channel: SMTPChannel, intake: RecordingIntake
) -> None:
    """The probe proves something only while the channel accepts real mail."""
    result = await transact(channel.port, [f"<{DESK}>"], message(msgid="<real@c.test>"))

    assert result.rcpts == [(250, b"2.1.5 Ok")]
    assert result.data is not None and result.data[0] == 250
