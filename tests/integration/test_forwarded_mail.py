"""A desk agent forwards a user's mail to the desk over real SMTP: the user is the requester,
gets the acknowledgement, and the forward is recorded. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.gateway_harness import GatewayHarness, running_gateway
from tests.integration.test_email_end_to_end import contact_event
from tests.unit.normalizer.test_forwarded import GMAIL, mail, original


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    extra = 'agent_addresses = ["*@it.example.com", "bob.agent@example.com"]\n'
    async with running_gateway(tmp_path, db_url, email_keys=extra) as harness:
        yield harness


async def test_an_agents_forward_is_the_users_ticket_and_the_user_is_acknowledged(
    desk: GatewayHarness,
) -> None:
    raw = mail("Bob Agent <bob.agent@example.com>", "Fwd: VPN keeps dropping", GMAIL)
    sent = await desk.send_mail(raw, mail_from="bob.agent@example.com")
    ticket = await desk.ticket(sent.queued_as)
    assert ticket["requester"]["email"] == "alice@example.org"
    assert ticket["subject"] == "VPN keeps dropping"
    [contact] = ticket["contacts"]
    assert contact["from"] == "alice@example.org"
    assert contact_event(ticket, contact["external_id"])["forwarded_by"] == "bob.agent@example.com"
    [ack] = await desk.settle()
    assert desk.sink.envelopes[0].rcpt_tos == ["alice@example.org"]
    assert ack["Subject"] == f"[{ticket['ref']}] VPN keeps dropping"


async def test_a_forward_of_a_mail_the_user_also_sent_joins_her_ticket(
    desk: GatewayHarness,
) -> None:
    first = await desk.send_mail(original(), mail_from="alice@example.org")
    raw = mail("carol@it.example.com", "Fwd: VPN keeps dropping", "see attached", original())
    again = await desk.send_mail(raw, mail_from="carol@it.example.com")
    assert again.queued_as == first.queued_as
    ticket = await desk.ticket(first.queued_as)
    assert len(ticket["contacts"]) == 2
    assert {c["from"] for c in ticket["contacts"]} == {"alice@example.org"}
