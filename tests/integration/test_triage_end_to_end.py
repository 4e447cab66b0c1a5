"""Issue 11 end to end: a whole gateway (real SMTP, HTTP, SQLite and PostgreSQL) with the real
offline classifier. An email is categorised by meaning, the same requester's API call about the
same problem joins its ticket, and ``POST /api/tickets/{ref}/contacts/{id}/split`` undoes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import cli
from tests.integration.gateway_harness import GatewayHarness, running_gateway

ALICE = "alice@example.org"
VPN = "The company VPN does not connect from home, it says error 809 since this morning."


def vpn_mail() -> bytes:
    lines = [
        f"From: Alice <{ALICE}>",
        "To: servicedesk@example.com",
        "Subject: VPN broken",
        "Date: Sun, 22 Nov 2026 15:00:00 +0000",
        "Message-ID: <vpn-1@mail.example.org>",
    ]
    body = f"{VPN}\r\n\r\nRegards,\r\nAlice\r\n\r\n> an old quote about the printer\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


async def first_ticket(desk: GatewayHarness) -> dict[str, object]:
    await desk.send_mail(vpn_mail(), mail_from=ALICE)
    status, page = await desk.api("GET", "/api/tickets")
    assert status == 200
    status, ticket = await desk.api("GET", f"/api/tickets/{page['tickets'][0]['ref']}")
    assert status == 200
    return ticket  # type: ignore[no-any-return]


async def test_an_email_is_categorised_by_meaning_with_its_guesses_on_the_ticket(
    desk: GatewayHarness,
) -> None:
    ticket = await first_ticket(desk)
    assert ticket["category"] == "network"
    [classified] = [e["detail"] for e in ticket["events"] if e["type"] == "classified"]  # type: ignore[attr-defined]
    assert classified["decided_by"] == "model"
    assert classified["summary"].startswith("classified as network (")
    assert not [e for e in ticket["events"] if e["type"] == "meaning"]  # type: ignore[attr-defined]


async def test_the_same_problem_by_api_joins_the_ticket_and_split_undoes_it(
    desk: GatewayHarness,
) -> None:
    ticket = await first_ticket(desk)
    ref = ticket["ref"]
    body = {"from": {"email": ALICE}, "text": "Same as my mail: VPN from home fails, error 809."}
    status, joined = await desk.api("POST", "/api/contacts", body)
    assert status == 201 and joined["ref"] == ref
    [linked] = [e["detail"] for e in joined["events"] if e["type"] == "contact.linked"]
    assert linked["reason"].startswith("linked: same requester, similar text")
    api_contact = joined["contacts"][-1]["id"]

    status, new = await desk.api("POST", f"/api/tickets/{ref}/contacts/{api_contact}/split")
    assert status == 201 and new["ref"] != ref
    assert [c["id"] for c in new["contacts"]] == [api_contact]
    status, old = await desk.api("GET", f"/api/tickets/{ref}")
    assert [c["channel"] for c in old["contacts"]] == ["email"]
    assert any(e["type"] == "split" for e in old["events"])

    status, error = await desk.api(
        "POST", f"/api/tickets/{new['ref']}/contacts/{api_contact}/split"
    )
    assert (status, error["field"]) == (409, "id")
    status, error = await desk.api("POST", f"/api/tickets/{ref}/contacts/{api_contact}/split")
    assert (status, error["field"]) == (404, "id")
    status, error = await desk.api("POST", f"/api/tickets/{ref}/contacts/abc/split")
    assert (status, error["field"]) == (404, "id")
    status, error = await desk.api("POST", "/api/tickets/SD-999/contacts/1/split")
    assert (status, error["field"]) == (404, "ref")


async def test_a_different_problem_by_api_is_a_ticket_of_its_own(desk: GatewayHarness) -> None:
    ticket = await first_ticket(desk)
    body = {"from": {"email": ALICE}, "text": "Also, could you send me a copy of invoice 88123?"}
    status, other = await desk.api("POST", "/api/contacts", body)
    assert status == 201 and other["ref"] != ticket["ref"]
    assert other["category"] == "billing"


async def test_an_unknown_api_category_is_a_400_naming_the_field(desk: GatewayHarness) -> None:
    body = {"from": {"email": ALICE}, "text": "x", "category": "hardwre"}
    status, error = await desk.api("POST", "/api/contacts", body)
    assert (status, error["field"]) == (400, "category")


async def test_replayed_mail_is_triaged_like_live_mail(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vpn.eml").write_bytes(vpn_mail())
    async with running_gateway(tmp_path, sqlite_url) as desk:
        argv = ["--config", str(desk.config_path), "replay", str(tmp_path / "vpn.eml")]
        assert await asyncio.to_thread(cli.main, argv) == 0  # beside the running gateway
        assert "SD-1 (created, new)" in capsys.readouterr().out
        assert (await desk.ticket("SD-1"))["category"] == "network"
