"""Zendesk and ServiceNow targets over real sockets: what each tool receives, and their
answers coming back to the requester."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.servicenow_api import FakeServiceNow
from tests.fakes.webhook_receiver import hook_headers
from tests.fakes.zendesk_api import FakeZendesk
from tests.integration.forward_support import MAIL, forwarding_gateway, wait_for_state, wait_until
from tests.integration.tools import SERVICENOW, ZENDESK

FOLLOW_UP = (
    b"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
    b"Subject: Re: SAP is down\r\nMessage-ID: <second@mail.example.org>\r\n"
    b"In-Reply-To: <first@mail.example.org>\r\n\r\nStill down at 11:00.\r\n"
)


@pytest.fixture
async def zendesk() -> AsyncIterator[FakeZendesk]:
    fake = FakeZendesk()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def servicenow() -> AsyncIterator[FakeServiceNow]:
    fake = FakeServiceNow(users={"alice@example.org": "62826bf03710200044e0bfc8bcbe5df1"})
    await fake.start()
    yield fake
    await fake.stop()


async def test_zendesk_ticket_then_agents_answer_back_and_solved(
    tmp_path: Path, sqlite_url: str, zendesk: FakeZendesk
) -> None:
    config = ZENDESK.config(zendesk.base_url)
    async with forwarding_gateway(tmp_path, sqlite_url, config, ZENDESK.env) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        key = (await wait_for_state(gw, ref, "cs-zendesk", "delivered"))["external_key"]
        ticket = zendesk.tickets[key]
        assert ticket["external_id"] == ref
        assert ticket["requester"] == {"name": "Alice", "email": "alice@example.org"}
        assert ticket["priority"] == "high"  # "down" is urgent: P2
        assert (await gw.send_mail(FOLLOW_UP)).queued_as == ref
        await wait_until(lambda: len(zendesk.comments[key]) == 2, "the follow-up in Zendesk")
        await gw.settle()
        before = len(gw.sink.messages)

        hook = f"{gw.base_url}/hooks/cs-zendesk"
        echo = await zendesk.deliver(hook, zendesk.comment_webhook(key, zendesk.comments[key][1]))
        answer = zendesk.agent_comment(key, "Fixed the SSO connector.", public=True)
        first = await zendesk.deliver(hook, answer)
        replay = await zendesk.deliver(hook, answer)
        forged = await zendesk.deliver(hook, answer, secret="wrong")
        solved = await zendesk.deliver(hook, zendesk.solve(key))
        messages = (await gw.settle())[before:]
        final = await gw.ticket(ref)

    assert zendesk.comments[key][1]["body"] == "Still down at 11:00."
    assert zendesk.comments[key][1]["public"] is True
    assert echo[1]["duplicates"] == 1  # our own comment coming back
    assert (first[1]["applied"], replay[1]["duplicates"], forged[0]) == (1, 1, 401)
    assert solved[1]["applied"] == 1
    assert len(messages) == 2
    assert "Fixed the SSO connector." in messages[0].get_content()
    assert messages[0]["In-Reply-To"] == "<second@mail.example.org>"
    assert final["status"] == "resolved"


async def test_servicenow_incident_updates_and_a_business_rules_answer(
    tmp_path: Path, sqlite_url: str, servicenow: FakeServiceNow
) -> None:
    config = SERVICENOW.config(servicenow.base_url)
    secret = SERVICENOW.env["SPOC_FORWARD_INFRA_WEBHOOK_SECRET"]
    async with forwarding_gateway(tmp_path, sqlite_url, config, SERVICENOW.env) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        number = (await wait_for_state(gw, ref, "infra", "delivered"))["external_key"]
        ((sys_id, incident),) = servicenow.incidents.items()
        assert (await gw.send_mail(FOLLOW_UP)).queued_as == ref
        await gw.api(
            "POST", f"/api/tickets/{ref}/escalate", {"reason": "vendor", "group": "vendor-acme"}
        )
        await wait_until(lambda: len(servicenow.journal[sys_id]) == 2, "two journal entries")
        await gw.settle()
        before = len(gw.sink.messages)

        body = json.dumps(
            {"type": "comment.public", "ref": ref, "text": "Certificate renewed.", "author": "Di"}
        ).encode()
        async with aiohttp.ClientSession() as http:
            unsigned = await http.post(f"{gw.base_url}/hooks/infra", data=body)
            forged = await http.post(
                f"{gw.base_url}/hooks/infra",
                data=body,
                headers=hook_headers(secret.replace("whsec_", "whsec_QUJD"), body),
            )
            ok = await http.post(
                f"{gw.base_url}/hooks/infra", data=body, headers=hook_headers(secret, body)
            )
            bad = await http.post(
                f"{gw.base_url}/hooks/infra",
                data=b'{"type": "nope"}',
                headers=hook_headers(secret, b'{"type": "nope"}'),
            )
            bad_body = await bad.json()
        messages = (await gw.settle())[before:]

    assert number == incident["number"]
    assert incident["caller_id"] == "62826bf03710200044e0bfc8bcbe5df1"
    assert incident["correlation_id"] == ref
    assert (incident["urgency"], incident["impact"]) == ("1", "2")  # P2: "down" is urgent
    assert servicenow.journal[sys_id][0] == ("comments", "Still down at 11:00.")
    assert servicenow.journal[sys_id][1][0] == "work_notes"
    assert "escalated to vendor-acme" in servicenow.journal[sys_id][1][1]
    assert (unsigned.status, forged.status, ok.status) == (401, 401, 200)
    assert (bad.status, bad_body["field"]) == (400, "type")
    assert len(messages) == 1
    assert "Certificate renewed." in messages[0].get_content()
