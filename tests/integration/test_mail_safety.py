"""Issue 8 parts 5 and 6 end to end: where acks go (Reply-To) and whom a trusted MX lets us ack.

A whole gateway over real sockets on SQLite and PostgreSQL; acks are read off the relay sink.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.gateway_harness import GatewayHarness, running_gateway
from tests.integration.test_email_end_to_end import contact_event, mail

MX = "mx.example.com"
PASSED = f"Authentication-Results: {MX}; dmarc=pass header.from=example.org"


@pytest.fixture
async def guarded(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    """A gateway whose config names the MX in front of it: ``[email] trusted_authserv_ids``."""
    async with running_gateway(tmp_path, db_url) as harness:
        await harness.stop()
        text = harness.config_path.read_text()
        marker = 'from_name = "IT Service Desk"\n'
        assert marker in text
        harness.config_path.write_text(
            text.replace(marker, f'{marker}trusted_authserv_ids = ["{MX}"]\n', 1)
        )
        await harness.start()
        yield harness


@pytest.fixture
async def plain(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


async def acked_to(desk: GatewayHarness) -> list[list[str]]:
    await desk.settle()
    return [list(e.rcpt_tos) for e in desk.sink.envelopes]


async def test_first_time_sender_the_mx_did_not_pass_gets_a_ticket_but_no_ack(
    guarded: GatewayHarness,
) -> None:
    sent = await guarded.send_mail(mail(msgid="spam-1@example.org"))
    ticket = await guarded.ticket(sent.queued_as)
    assert contact_event(ticket, "spam-1@example.org")["ack"] == "suppressed:unauthenticated"
    assert await acked_to(guarded) == []


async def test_a_pass_planted_below_the_mx_header_does_not_count(guarded: GatewayHarness) -> None:
    planted = f"Authentication-Results: other.example; none\n{PASSED}"
    await guarded.send_mail(mail(msgid="spam-2@example.org", headers=planted))
    assert await acked_to(guarded) == []


async def test_first_time_sender_the_mx_passed_is_acknowledged_and_then_known(
    guarded: GatewayHarness,
) -> None:
    await guarded.send_mail(mail(msgid="ok-1@example.org", headers=PASSED))
    # Known from now on: a later mail is acknowledged even without a verdict.
    await guarded.send_mail(mail(subject="Scanner too", msgid="ok-2@example.org"))
    assert await acked_to(guarded) == [["alice@example.org"], ["alice@example.org"]]


async def test_without_the_key_unauthenticated_senders_are_acknowledged_as_before(
    plain: GatewayHarness,
) -> None:
    await plain.send_mail(mail(msgid="any-1@example.org"))
    assert await acked_to(plain) == [["alice@example.org"]]


@pytest.mark.parametrize(
    ("reply_to", "expected"),
    [
        ("IT Team <it-team@example.org>", "it-team@example.org"),
        ("victim@elsewhere.example", "alice@example.org"),
    ],
)
async def test_the_ack_goes_to_a_same_domain_reply_to_and_never_to_a_third_domain(
    plain: GatewayHarness, reply_to: str, expected: str
) -> None:
    await plain.send_mail(mail(headers=f"Reply-To: {reply_to}"))
    assert await acked_to(plain) == [[expected]]
