"""Enforcing the one address: mail to a legacy alias is handled like mail to the desk, and the
requester is told once, in the acknowledgement, that the desk's one address is email.address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.gateway_harness import DESK, GatewayHarness, running_gateway
from tests.integration.test_email_end_to_end import contact_event, mail

NOTICE = "Please note: the IT service desk has one address now, servicedesk@example.com."


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


async def test_mail_to_an_alias_is_acknowledged_with_the_one_address_once(
    desk: GatewayHarness,
) -> None:
    first = await desk.send_mail(
        mail(to="helpdesk@example.com", msgid="a1@example.org"), rcpts=["helpdesk@example.com"]
    )
    second = await desk.send_mail(
        mail(to="cs@example.com", subject="Second problem", msgid="a2@example.org"),
        rcpts=["cs@example.com"],
    )
    assert first.queued_as != second.queued_as
    acks = await desk.settle()
    assert len(acks) == 2
    by_subject = {a["Subject"]: a.get_content() for a in acks}
    told = by_subject[f"[{first.queued_as}] Printer on fire"]
    assert told.startswith(NOTICE)
    assert "Your message to helpdesk@example.com reached us" in told
    assert NOTICE not in by_subject[f"[{second.queued_as}] Second problem"]  # once per requester

    ticket = await desk.ticket(first.queued_as)
    [contact] = ticket["contacts"]
    assert contact["to"] == "helpdesk@example.com"
    assert contact_event(ticket, contact["external_id"])["legacy_address"] == "helpdesk@example.com"
    metrics = await desk.metrics()
    assert (
        metrics[("spoc_legacy_contacts_total", frozenset({("address", "helpdesk@example.com")}))]
        == 1
    )
    assert metrics[("spoc_legacy_contacts_total", frozenset({("address", "cs@example.com")}))] == 1


async def test_mail_to_the_desk_address_gets_no_notice(desk: GatewayHarness) -> None:
    sent = await desk.send_mail(
        mail(to=f"{DESK}, helpdesk@example.com"), rcpts=[DESK, "helpdesk@example.com"]
    )
    [ack] = await desk.settle()
    assert NOTICE not in ack.get_content()
    ticket = await desk.ticket(sent.queued_as)
    assert "legacy_address" not in contact_event(ticket, ticket["contacts"][0]["external_id"])
