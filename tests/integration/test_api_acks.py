"""A web form's requester hears back like a mail sender does: ``POST /api/contacts`` with
``from.email`` gets one acknowledgement naming the ref, under the same loop and rate rules.
A whole gateway over real sockets; the acks come out through the outbox to a relay sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.gateway_harness import DESK, GatewayHarness, running_gateway

ALICE = "alice@example.org"


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


async def post(desk: GatewayHarness, **overrides: Any) -> dict[str, Any]:
    body = {"from": {"email": ALICE, "name": "Alice"}, "subject": "Printer on fire"} | overrides
    status, ticket = await desk.api("POST", "/api/contacts", body)
    assert status == 201, ticket
    assert isinstance(ticket, dict)
    return ticket


def ack_decision(ticket: dict[str, Any]) -> str:
    [added] = [e for e in ticket["events"] if e["type"] == "contact.added"]
    return str(added["detail"]["ack"])


async def test_an_api_contact_with_an_email_gets_one_ack_naming_its_ref(
    desk: GatewayHarness,
) -> None:
    ticket = await post(desk, text="Floor 3.")
    assert ticket["ref"] == "SD-1"
    assert ack_decision(ticket) == "queued"

    [ack] = await desk.settle()
    assert desk.sink.envelopes[0].rcpt_tos == [ALICE]
    assert ack["To"] == ALICE
    assert ack["From"].addresses[0].addr_spec == DESK
    assert ack["Subject"] == "[SD-1] Printer on fire"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert "Hello Alice," in ack.get_content() and "SD-1" in ack.get_content()

    # Her answer to the ack lands on the ticket, as a mail sender's would.
    reply = (
        f"From: Alice <{ALICE}>\r\nTo: {DESK}\r\nSubject: Re: [SD-1] Printer on fire\r\n"
        f"Message-ID: <alice-answer@mail.example.org>\r\nIn-Reply-To: {ack['Message-ID']}\r\n"
        "\r\nIt is out now.\r\n"
    ).encode()
    assert (await desk.send_mail(reply)).queued_as == "SD-1"


@pytest.mark.parametrize(
    ("sender", "why"),
    [
        ({"phone": "+14155552671"}, "suppressed:no-address"),
        ({"email": "noreply@example.org"}, "suppressed:role-address"),
        ({"email": DESK}, "suppressed:own-address"),
    ],
)
async def test_an_api_contact_without_a_real_persons_address_gets_no_ack(
    desk: GatewayHarness, sender: dict[str, str], why: str
) -> None:
    ticket = await post(desk, **{"from": sender})
    assert ack_decision(ticket) == why
    assert await desk.settle() == []


async def test_one_api_sender_gets_at_most_five_acks_an_hour(desk: GatewayHarness) -> None:
    tickets = [await post(desk, subject=f"Problem {n}") for n in range(1, 8)]
    acks = await desk.settle()
    assert sorted(a["Subject"] for a in acks) == [f"[SD-{n}] Problem {n}" for n in range(1, 6)]
    assert ack_decision(tickets[-1]) == "suppressed:sender-rate-limit"
