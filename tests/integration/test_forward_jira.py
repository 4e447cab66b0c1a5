"""``kind = "jira"`` over real sockets against a local Jira Service Management: the whole
round trip (mail in -> request in Jira -> an agent's public comment -> a threaded email reply
to the requester), comments both ways, and Jira's failures (429, 5xx, 401)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.jira_api import FakeJira
from tests.integration.forward_support import (
    MAIL,
    forwarding_gateway,
    wait_for_state,
    wait_until,
)
from tests.integration.tools import JIRA

ENV = JIRA.env


def _config(jira: FakeJira) -> str:
    return JIRA.config(jira.base_url)


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    fake = FakeJira()
    await fake.start()
    yield fake
    await fake.stop()


async def test_round_trip_mail_to_jira_and_the_agents_answer_back_to_the_requester(
    tmp_path: Path, db_url: str, jira: FakeJira
) -> None:
    async with forwarding_gateway(tmp_path, db_url, _config(jira), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, "l2-jira", "delivered")
        key = record["external_key"]
        request = jira.requests[key]
        assert request["requestFieldValues"][0]["value"] == f"[{ref}] SAP is down"
        assert "Nobody can log in to SAP" in request["requestFieldValues"][1]["value"]
        assert request["raiseOnBehalfOf"] == jira.customers["alice@example.org"]["accountId"]
        await gw.settle()
        acks = len(gw.sink.messages)

        hook = f"{gw.base_url}/hooks/l2-jira"
        payload = jira.agent_comment(key, "We restarted the SAP login service.", public=True)
        first = await jira.deliver(hook, payload, "delivery-1")
        replay = await jira.deliver(hook, payload, "delivery-1")
        messages = await gw.settle()

        internal = jira.agent_comment(key, "root cause: expired cert", public=False)
        assert (await jira.deliver(hook, internal, "delivery-2"))[0] == 200
        resolved = await jira.deliver(hook, jira.resolve(key), "delivery-3")
        after = await gw.settle()
        ticket = await gw.ticket(ref)

    assert first == (200, {"applied": 1, "duplicates": 0, "ignored": 0})
    assert replay == (200, {"applied": 0, "duplicates": 1, "ignored": 0})
    replies = messages[acks:]
    assert len(replies) == 1
    reply = replies[0]
    assert reply["To"] == "alice@example.org"
    assert reply["Subject"] == f"Re: [{ref}] SAP is down"
    assert reply["In-Reply-To"] == "<first@mail.example.org>"
    assert str(reply["References"]).split()[0] == "<first@mail.example.org>"  # the root first
    assert "We restarted the SAP login service." in reply.get_content()
    assert resolved[0] == 200
    later = after[acks + 1 :]
    assert len(later) == 1  # the resolution; the internal comment is never sent
    assert "resolved" in later[0].get_content()
    assert "expired cert" not in later[0].get_content()
    assert ticket["status"] == "resolved"
    comments = [e["detail"] for e in ticket["events"] if e["type"] == "forward.comment"]
    assert [(c["public"], c["text"]) for c in comments] == [
        (True, "We restarted the SAP login service."),
        (False, "root cause: expired cert"),
    ]


async def test_a_later_mail_is_a_public_comment_and_its_echo_is_not_relayed(
    tmp_path: Path, sqlite_url: str, jira: FakeJira
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, _config(jira), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        key = (await wait_for_state(gw, ref, "l2-jira", "delivered"))["external_key"]
        follow_up = (
            b"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
            b"Subject: Re: SAP is down\r\nMessage-ID: <second@mail.example.org>\r\n"
            b"In-Reply-To: <first@mail.example.org>\r\n\r\nStill down at 11:00.\r\n"
        )
        assert (await gw.send_mail(follow_up)).queued_as == ref
        await wait_until(lambda: len(jira.comments[key]) == 1, "the comment in Jira")
        await gw.settle()
        before = len(gw.sink.messages)
        # Jira sends comment_created for our own comment too.
        echo = jira.comment_webhook(key, jira.comments[key][0])
        status, counts = await jira.deliver(f"{gw.base_url}/hooks/l2-jira", echo, "d-echo")
        await gw.settle()

    assert jira.comments[key][0]["body"] == "Still down at 11:00."
    assert jira.comments[key][0]["public"] is True
    assert (status, counts["duplicates"]) == (200, 1)
    assert len(gw.sink.messages) == before


async def test_429_with_retry_after_and_5xx_are_retried_and_the_request_made_once(
    tmp_path: Path, sqlite_url: str, jira: FakeJira
) -> None:
    jira.script = [(429, {"Retry-After": "1"}), (503, {}), (502, {})]
    async with forwarding_gateway(tmp_path, sqlite_url, _config(jira), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, "l2-jira", "delivered", seconds=30)

    assert list(jira.requests) == [record["external_key"]]
    assert len(jira.calls) == 3 + 3  # three refused, then the lookup, customer + request


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_dead_lettered_with_jiras_reason(
    tmp_path: Path, sqlite_url: str, jira: FakeJira, status: int
) -> None:
    if status == 401:
        env = {**ENV, **JIRA.wrong_secret_env}
    else:
        env, jira.script = ENV, [(403, {})] * 6  # customer and user search, 3 attempts
    async with forwarding_gateway(tmp_path, sqlite_url, _config(jira), env) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, "l2-jira", "dead")

    assert f"answered {status}" in record["last_error"]
    if status == 401:
        assert "must be authenticated" in record["last_error"]
    assert jira.requests == {}


async def test_existing_customer_is_found_not_created_twice(
    tmp_path: Path, sqlite_url: str, jira: FakeJira
) -> None:
    jira.customers["alice@example.org"] = {"accountId": "qm:alice", "displayName": "Alice"}
    async with forwarding_gateway(tmp_path, sqlite_url, _config(jira), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        key = (await wait_for_state(gw, ref, "l2-jira", "delivered"))["external_key"]

    assert jira.requests[key]["raiseOnBehalfOf"] == "qm:alice"


async def test_badly_signed_or_unsigned_jira_hook_is_401_and_changes_nothing(
    tmp_path: Path, sqlite_url: str, jira: FakeJira
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, _config(jira), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        key = (await wait_for_state(gw, ref, "l2-jira", "delivered"))["external_key"]
        await gw.settle()
        before = len(gw.sink.messages)
        payload = jira.agent_comment(key, "forged answer", public=True)
        hook = f"{gw.base_url}/hooks/l2-jira"
        forged = await jira.deliver(hook, payload, "d-1", secret="not-the-secret")
        unsigned = await jira.deliver(hook, payload, "d-2", signed=False)
        await gw.settle()
        ticket = await gw.ticket(ref)

    assert (forged[0], unsigned[0]) == (401, 401)
    assert len(gw.sink.messages) == before
    assert not [e for e in ticket["events"] if e["type"] == "forward.comment"]


async def test_without_the_right_to_create_customers_the_request_is_raised_anyway(
    tmp_path: Path, sqlite_url: str, jira: FakeJira
) -> None:
    jira.customers_forbidden = True
    async with forwarding_gateway(tmp_path, sqlite_url, _config(jira), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        key = (await wait_for_state(gw, ref, "l2-jira", "delivered"))["external_key"]

    assert jira.requests[key]["raiseOnBehalfOf"] is None  # raised by the integration user
