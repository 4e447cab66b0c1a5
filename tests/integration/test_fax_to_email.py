"""Fax-to-email end to end: a fax service's mail over real SMTP becomes a ``fax`` ticket from the
caller's number, never acknowledged to the service; the same mail from anybody else stays email.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.gateway_harness import GatewayHarness, running_gateway
from tests.unit.normalizer.test_fax import fax_mail, pdf

FAX_CONFIG = '[fax]\nsenders = ["*@fax.example.net"]\n'


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url, extra_config=FAX_CONFIG) as harness:
        yield harness


async def test_a_fax_becomes_a_fax_ticket_from_the_callers_number_without_an_ack(
    desk: GatewayHarness,
) -> None:
    raw = fax_mail(headers={"Auto-Submitted": "auto-generated"})
    sent = await desk.send_mail(raw, mail_from="bounces@fax.example.net")
    assert sent.queued_as == "SD-1"

    ticket = await desk.ticket("SD-1")
    assert ticket["channel"] == "fax"
    assert ticket["requester"]["phone"] == "+14155550100"
    [contact] = ticket["contacts"]
    assert contact["channel"] == "fax"
    assert contact["from"] == "+14155550100"
    assert contact["text"].endswith("Fax document: fax.pdf (3 pages)")
    [attachment] = contact["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == ("fax.pdf", "application/pdf")
    assert attachment["size"] == len(pdf(3))
    status, found = await desk.api("GET", "/api/tickets?requester=%2B14155550100")
    assert status == 200 and [t["ref"] for t in found["tickets"]] == ["SD-1"]
    assert await desk.settle() == []  # nothing is mailed back to the fax service


async def test_two_faxes_from_one_number_are_one_requester(desk: GatewayHarness) -> None:
    await desk.send_mail(fax_mail(), mail_from="bounces@fax.example.net")
    second = fax_mail(subject="Fax from +1 415 555 0100 (2 pages)").replace(
        b"fax-1@fax.example.net", b"fax-2@fax.example.net"
    )
    await desk.send_mail(second, mail_from="bounces@fax.example.net")
    first, other = (await desk.ticket("SD-1")), (await desk.ticket("SD-2"))
    assert first["requester"]["id"] == other["requester"]["id"]


async def test_a_mail_that_only_says_fax_from_is_still_email(desk: GatewayHarness) -> None:
    sent = await desk.send_mail(fax_mail(sender="alice@example.org"), mail_from="alice@example.org")
    ticket = await desk.ticket(sent.queued_as)
    assert ticket["channel"] == "email"
    assert ticket["requester"]["email"] == "alice@example.org"
    assert len(await desk.settle()) == 1  # a person's mail is acknowledged as usual
