"""``kind = "webhook"`` forwards over real sockets: Standard Webhooks signatures checked by an
independent verifier, retries on 408/429/503 (a Retry-After date honoured), dead letters on
401, other 4xx and private addresses, and signed answers coming back through
``POST /hooks/{name}``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.webhook_receiver import SECRET, WebhookReceiver, hook_headers
from tests.integration.forward_support import (
    MAIL,
    forwarding_gateway,
    wait_for_state,
    wait_until,
)
from tests.integration.gateway_harness import GatewayHarness

ENV = {"SPOC_FORWARD_L2_HOOK_SECRET": SECRET}


def _config(url: str, allow_private: bool = True) -> str:
    return f"""
[[forward]]
name = "l2-hook"
kind = "webhook"
url = "{url}"
allow_private_network = {str(allow_private).lower()}
"""


@pytest.fixture
async def receiver() -> WebhookReceiver:
    fake = WebhookReceiver()
    await fake.start()
    yield fake  # type: ignore[misc]
    await fake.stop()


async def test_new_ticket_is_posted_signed_per_standard_webhooks(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        await wait_until(lambda: receiver.events, "the webhook")
        state = await wait_for_state(gw, ref, "l2-hook", "delivered")

    assert receiver.refused == 0
    event = receiver.events[0]
    assert event["type"] == "ticket.created"
    assert event["ticket"]["ref"] == ref
    assert event["ticket"]["contacts"][0]["text"].startswith("Nobody can log in")
    assert receiver.ids == [f"forward:l2-hook:{ref}:created"]
    assert state["state"] == "delivered"


async def test_429_with_retry_after_and_503s_are_retried_and_delivered_once(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver
) -> None:
    receiver.script = [(429, {"Retry-After": "1"}), (503, {}), (503, {})]
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        await wait_until(lambda: receiver.events, "the webhook after the retries", 20)
        await gw.settle()

    assert receiver.attempts == 4
    assert list(receiver.unique) == [f"forward:l2-hook:{ref}:created"]


async def test_401_is_dead_lettered_with_the_reason(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver
) -> None:
    receiver.secret = "whsec_" + "QUJD" * 8  # the receiver expects another secret: 401
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        state = await wait_for_state(gw, ref, "l2-hook", "dead")

    assert "answered 401" in state["last_error"]
    assert receiver.events == []


@pytest.mark.parametrize(
    ("status", "state", "attempts"),
    [(404, "dead", 3), (422, "dead", 3), (408, "delivered", 3)],
)
async def test_a_4xx_is_dead_after_the_bounded_attempts_but_408_is_retried(
    tmp_path: Path,
    sqlite_url: str,
    receiver: WebhookReceiver,
    status: int,
    state: str,
    attempts: int,
) -> None:
    receiver.script = [(status, {})] * 2 + ([] if state == "delivered" else [(status, {})])
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, "l2-hook", state)
        _, listing = await gw.api("GET", "/api/outbox", status="dead")

    assert receiver.attempts == attempts
    assert len(receiver.unique) == (1 if state == "delivered" else 0)
    dead = [i for i in listing["items"] if i["target"] == "l2-hook"]
    if state == "dead":
        assert f"answered {status}" in record["last_error"]
        assert [(i["attempts"], i["idempotency_key"]) for i in dead] == [
            (3, f"forward:l2-hook:{ref}:created")
        ]
    else:
        assert dead == []


async def test_retry_after_as_an_http_date_holds_the_next_attempt_until_then(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver
) -> None:
    then = datetime.now(UTC) + timedelta(hours=1)
    receiver.script = [(503, {"Retry-After": format_datetime(then, usegmt=True)})]
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        await wait_until(lambda: receiver.attempts == 1, "the first attempt")
        record = await wait_for_state(gw, ref, "l2-hook", "pending")
        await wait_until(lambda: _failed_once(gw), "the failure recorded")
        _, listing = await gw.api("GET", "/api/outbox", status="pending")

    (item,) = [i for i in listing["items"] if i["target"] == "l2-hook"]
    next_attempt = datetime.fromisoformat(item["next_attempt_at"])
    assert then - timedelta(seconds=2) <= next_attempt <= then + timedelta(seconds=1)
    assert receiver.attempts == 1
    assert record["state"] == "pending"


async def _failed_once(gw: GatewayHarness) -> bool:
    _, listing = await gw.api("GET", "/api/outbox", status="pending")
    return any(i["target"] == "l2-hook" and i["last_error"] for i in listing["items"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_address_is_refused_unless_allowed(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver, host: str
) -> None:
    url = receiver.url.replace("127.0.0.1", host)
    async with forwarding_gateway(tmp_path, sqlite_url, _config(url, False), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        state = await wait_for_state(gw, ref, "l2-hook", "dead")

    assert "private or local" in state["last_error"]
    assert receiver.attempts == 0  # never connected


async def test_redirect_is_not_followed(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver
) -> None:
    receiver.script = [(307, {"Location": "http://169.254.169.254/latest/meta-data/"})] * 3
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        state = await wait_for_state(gw, ref, "l2-hook", "dead")

    assert "redirects are not followed" in state["last_error"]
    assert receiver.attempts == 3  # max_attempts for a permanent failure, never elsewhere


async def test_signed_public_answer_reaches_the_requester_once(
    tmp_path: Path, sqlite_url: str, receiver: WebhookReceiver
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, _config(receiver.url), ENV) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        await wait_until(lambda: receiver.events, "the webhook")
        body = json.dumps(
            {"type": "comment.public", "ref": ref, "text": "SAP is back.", "author": "Bo"}
        ).encode()
        headers = hook_headers(SECRET, body, msg_id="msg_1")
        url = f"{gw.base_url}/hooks/l2-hook"
        async with aiohttp.ClientSession() as http:
            first = await http.post(url, data=body, headers=headers)
            replay = await http.post(url, data=body, headers=headers)
            forged = await http.post(url, data=body.replace(b"back", b"gone"), headers=headers)
            unsigned = await http.post(url, data=body)
            answers = [await r.json() for r in (first, replay)]
        messages = await gw.settle()

    assert (first.status, replay.status, forged.status, unsigned.status) == (200, 200, 401, 401)
    assert answers == [
        {"applied": 1, "duplicates": 0, "ignored": 0},
        {"applied": 0, "duplicates": 1, "ignored": 0},
    ]
    replies = [m for m in messages if "SAP is back." in m.get_content()]
    assert len(replies) == 1
    assert replies[0]["To"] == "alice@example.org"
    assert replies[0]["In-Reply-To"] == "<first@mail.example.org>"
    assert not [m for m in messages if "gone" in m.get_content()]
