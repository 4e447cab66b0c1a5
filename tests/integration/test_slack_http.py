"""Slack over HTTP (``POST /slack/events``), end to end through a whole gateway.

Requests are signed with slack_sdk's ``SignatureVerifier``; the Web API is a local fake that
records every call, so each test can see what the app posted back to Slack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.slack import SlackChannel
from gateway.config.categories import default_categories
from normalizer.contact import Contact
from normalizer.intake import IntakeResult, TemporaryIntakeError
from tests.fakes.slack_api import BOT_ID, BOT_USER_ID
from tests.integration.slack_support import (
    ALICE,
    ALICE_EMAIL,
    BOB,
    DM,
    GENERAL,
    SlackDesk,
    channel_message,
    dm,
    slack_desk,
)


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[SlackDesk]:
    async with slack_desk(tmp_path, sqlite_url) as (desk, _):
        yield desk


async def ticket_of(desk: SlackDesk, index: int = 0) -> dict[str, Any]:
    tickets = await desk.slack_tickets()
    return await desk.harness.ticket(tickets[index]["ref"])


# ---- the protocol --------------------------------------------------------------------------
async def test_url_verification_gets_its_challenge_back(desk: SlackDesk) -> None:
    body = {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification"}  # fmt: skip
    status, text = await desk.post(json.dumps(body).encode(), "application/json")
    assert status == 200 and body["challenge"] in text


async def test_ssl_check_is_answered_with_200(desk: SlackDesk) -> None:
    status, _ = await desk.form({"ssl_check": "1", "token": "legacy-verification-token"})
    assert status == 200


async def test_bad_signature_is_refused_with_401_and_stores_nothing(desk: SlackDesk) -> None:
    status, _ = await desk.event(dm("printer broken", desk.next_ts()), secret="not-the-secret")
    assert status == 401
    assert await desk.slack_tickets() == []
    assert desk.api.called("users.info") == []


async def test_stale_signature_is_refused_with_401(desk: SlackDesk) -> None:
    stale = int(time.time()) - 10 * 60
    status, _ = await desk.event(dm("printer broken", desk.next_ts()), timestamp=stale)
    assert status == 401 and await desk.slack_tickets() == []


async def test_signed_garbage_gets_400_not_500(desk: SlackDesk) -> None:
    status, _ = await desk.post(b"{not json", "application/json")
    assert status == 400


# ---- ways in -------------------------------------------------------------------------------
async def test_dm_opens_a_ticket_and_the_app_answers_in_its_thread(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    status, _ = await desk.event(dm("My laptop will not boot\nIt beeps three times", ts))
    assert status == 200
    ticket = await ticket_of(desk)
    assert ticket["channel"] == "slack" and ticket["subject"] == "My laptop will not boot"
    assert ticket["requester"]["slack_user_id"] == ALICE
    assert ticket["requester"]["email"] == ALICE_EMAIL
    assert ticket["requester"]["name"] == "Alice Example"
    assert ticket["contacts"][0]["external_id"] == f"{DM}:{ts}"
    [ack] = await desk.api.wait_for("chat.postMessage")
    assert ack.args["channel"] == DM and ack.args["thread_ts"] == ts
    assert ticket["ref"] in ack.args["text"] and ack.token == "xoxb-1234-5678-fake"


async def test_reply_in_the_dm_thread_joins_the_ticket(desk: SlackDesk) -> None:
    root = desk.next_ts()
    await desk.event(dm("VPN is down", root), event_id="Ev1")
    await desk.event(dm("Still down after reboot", desk.next_ts(), thread_ts=root), event_id="Ev2")
    [summary] = await desk.slack_tickets()
    ticket = await desk.harness.ticket(summary["ref"])
    assert [c["text"] for c in ticket["contacts"] if c["direction"] == "in"] == [
        "VPN is down",
        "Still down after reboot",
    ]


async def test_each_top_level_dm_is_a_new_conversation(desk: SlackDesk) -> None:
    await desk.event(dm("VPN is down", desk.next_ts()), event_id="Ev1")
    await desk.event(dm("Printer jammed", desk.next_ts()), event_id="Ev2")
    assert len(await desk.slack_tickets()) == 2


async def test_a_retried_event_is_stored_once(desk: SlackDesk) -> None:
    event = dm("VPN is down", desk.next_ts())
    first, _ = await desk.event(event, event_id="Ev1")
    again, _ = await desk.event(
        event,
        event_id="Ev1",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert first == again == 200
    [summary] = await desk.slack_tickets()
    ticket = await desk.harness.ticket(summary["ref"])
    assert len(ticket["contacts"]) == 1


async def test_bot_messages_and_our_own_are_ignored(desk: SlackDesk) -> None:
    other_bot = {**dm("deploy finished", desk.next_ts()), "bot_id": "B0OTHER"}
    ours = {**dm("Your request is SD-1", desk.next_ts()), "user": BOT_USER_ID, "bot_id": BOT_ID}
    edited = {**dm("typo", desk.next_ts()), "subtype": "message_changed"}
    for n, event in enumerate((other_bot, ours, edited)):
        status, _ = await desk.event(event, event_id=f"Ev{n}")
        assert status == 200
    assert await desk.slack_tickets() == []


async def test_mention_opens_a_ticket_with_its_permalink_and_author(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    text = f"<@{BOT_USER_ID}> the projector in room 4 is dead"
    await desk.event(channel_message(text, ts, user=BOB, kind="app_mention"))
    ticket = await ticket_of(desk)
    assert ticket["requester"]["slack_user_id"] == BOB
    assert ticket["subject"] == "the projector in room 4 is dead"
    text_stored = ticket["contacts"][0]["text"]
    assert f"https://example.slack.com/archives/{GENERAL}/p{ts.replace('.', '')}" in text_stored
    [ack] = await desk.api.wait_for("chat.postMessage")
    assert ack.args["channel"] == GENERAL and ack.args["thread_ts"] == ts


async def test_the_same_mention_as_message_and_app_mention_is_one_contact(
    desk: SlackDesk,
) -> None:
    ts = desk.next_ts()
    text = f"<@{BOT_USER_ID}> wifi is flaky"
    await desk.event(channel_message(text, ts, kind="app_mention"), event_id="Ev1")
    reply_ts = desk.next_ts()
    thread_reply = channel_message("on floor 2 too", reply_ts, thread_ts=ts)
    await desk.event(thread_reply, event_id="Ev2")
    await desk.event(channel_message(text, ts), event_id="Ev3")  # message.channels, same ts
    [summary] = await desk.slack_tickets()
    ticket = await desk.harness.ticket(summary["ref"])
    assert [c["external_id"] for c in ticket["contacts"] if c["direction"] == "in"] == [
        f"{GENERAL}:{ts}",
        f"{GENERAL}:{reply_ts}",
    ]


async def test_channel_chatter_outside_ticket_threads_is_ignored(desk: SlackDesk) -> None:
    await desk.event(channel_message("lunch anyone?", desk.next_ts()), event_id="Ev1")
    chatter = channel_message("sure", desk.next_ts(), thread_ts=desk.next_ts())
    await desk.event(chatter, event_id="Ev2")
    assert await desk.slack_tickets() == []


async def test_helpdesk_command_opens_the_modal_with_the_configured_categories(
    desk: SlackDesk,
) -> None:
    status, _ = await desk.form(
        {
            "command": "/helpdesk",
            "text": "printer on fire",
            "user_id": ALICE,
            "channel_id": DM,
            "team_id": "T0001",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "response_url": "https://hooks.slack.com/commands/1234/5678",
        }
    )
    assert status == 200
    [opened] = desk.api.called("views.open")
    assert opened.args["trigger_id"] == "13345224609.738474920.8088930838d88f008e0"
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    blocks = {b["block_id"]: b for b in view["blocks"]}
    options = blocks["category"]["element"]["options"]
    assert [o["value"] for o in options] == [c.name for c in default_categories()]
    assert options[0]["text"]["text"] == "broken device"  # [[categories]], not [ivr]
    assert blocks["description"]["element"]["initial_value"] == "printer on fire"


def view_submission(view_id: str, description: str, category: str = "locked_account") -> Any:
    return {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": ALICE, "username": "alice", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "trigger_id": "12345.98765.abcd2358fdea",
        "view": {
            "id": view_id,
            "team_id": "T0001",
            "type": "modal",
            "callback_id": "spoc_helpdesk_form",
            "state": {
                "values": {
                    "category": {
                        "category_select": {
                            "type": "static_select",
                            "selected_option": {"value": category},
                        }
                    },
                    "urgency": {
                        "urgency_select": {
                            "type": "static_select",
                            "selected_option": {"value": "high"},
                        }
                    },
                    "description": {
                        "description_input": {"type": "plain_text_input", "value": description}
                    },
                }
            },
            "hash": "156772938.1827394",
        },
    }


async def test_modal_submission_opens_a_ticket_with_its_category(desk: SlackDesk) -> None:
    status, body = await desk.interaction(view_submission("V0001", "I am locked out of SAP"))
    assert status == 200 and body == ""
    ticket = await ticket_of(desk)
    assert ticket["category"] == "locked_account" and ticket["kind"] == "service_request"
    assert ticket["subject"] == "I am locked out of SAP"
    [ack] = await desk.api.wait_for("chat.postMessage")
    assert ack.args["channel"] == ALICE and "thread_ts" not in ack.args
    assert ticket["ref"] in ack.args["text"]


async def test_modal_without_a_description_shows_an_error_and_stores_nothing(
    desk: SlackDesk,
) -> None:
    status, body = await desk.interaction(view_submission("V0002", "   "))
    assert status == 200
    assert json.loads(body) == {
        "response_action": "errors",
        "errors": {"description": "please describe the problem"},
    }
    assert await desk.slack_tickets() == []


def shortcut(message: dict[str, Any], invoked_by: str = ALICE) -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": "spoc_create_ticket",
        "trigger_id": "13345224609.8534564800.6f8ab1f53e13d0cd15f96106292d5536",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": invoked_by, "name": "alice"},
        "channel": {"id": GENERAL, "name": "general"},
        "message": message,
        "message_ts": message["ts"],
        "response_url": "https://hooks.slack.com/app/T0001/1234/abcd",
        "token": "legacy-verification-token",
    }


async def test_message_shortcut_creates_a_ticket_for_the_messages_author(
    desk: SlackDesk,
) -> None:
    ts = desk.next_ts()
    message = {"type": "message", "user": BOB, "text": "my screen flickers", "ts": ts}
    status, _ = await desk.interaction(shortcut(message, invoked_by=ALICE))
    assert status == 200
    ticket = await ticket_of(desk)
    assert ticket["requester"]["slack_user_id"] == BOB
    assert ticket["contacts"][0]["external_id"] == f"shortcut:{GENERAL}:{ts}"
    [ack] = await desk.api.wait_for("chat.postMessage")
    assert ack.args["channel"] == GENERAL and ack.args["thread_ts"] == ts


async def test_ticket_reaction_creates_a_ticket_for_the_messages_author(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    desk.api.messages[(GENERAL, ts)] = {
        "type": "message",
        "user": BOB,
        "text": "keyboard missing keys",
        "ts": ts,
    }
    reaction = {
        "type": "reaction_added",
        "user": ALICE,
        "reaction": "ticket",
        "item_user": BOB,
        "item": {"type": "message", "channel": GENERAL, "ts": ts},
        "event_ts": desk.next_ts(),
    }
    await desk.event(reaction, event_id="Ev1")
    await desk.event({**reaction, "reaction": "thumbsup"}, event_id="Ev2")
    [summary] = await desk.slack_tickets()
    ticket = await desk.harness.ticket(summary["ref"])
    assert ticket["requester"]["slack_user_id"] == BOB
    assert ticket["contacts"][0]["external_id"] == f"reaction:{GENERAL}:{ts}"


# ---- ways back -----------------------------------------------------------------------------
async def test_agent_reply_is_posted_in_the_tickets_thread(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    await desk.event(dm("VPN is down", ts))
    ref = (await desk.slack_tickets())[0]["ref"]
    await desk.api.wait_for("chat.postMessage", 1)
    status, _ = await desk.harness.api(
        "POST", f"/api/tickets/{ref}/reply", {"text": "Try the new profile"}
    )
    assert status == 202
    calls = await desk.api.wait_for("chat.postMessage", 2)
    assert calls[-1].args == {
        "channel": DM,
        "text": "Try the new profile",
        "thread_ts": ts,
        "unfurl_links": False,
    }


async def test_escalation_is_announced_in_the_thread(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    await desk.event(dm("VPN is down", ts))
    ref = (await desk.slack_tickets())[0]["ref"]
    status, _ = await desk.harness.api(
        "POST", f"/api/tickets/{ref}/escalate", {"reason": "needs the network team"}
    )
    assert status == 200
    calls = await desk.api.wait_for("chat.postMessage", 2)
    assert "needs the network team" in calls[-1].args["text"]
    assert calls[-1].args["thread_ts"] == ts


# ---- identity ------------------------------------------------------------------------------
async def test_without_the_email_scope_the_requester_is_the_slack_id_and_a_log_says_why(
    desk: SlackDesk, caplog: pytest.LogCaptureFixture
) -> None:
    desk.api.email_scope = False
    with caplog.at_level(logging.WARNING, logger="channels.slack.users"):
        await desk.event(dm("VPN is down", desk.next_ts()))
    ticket = await ticket_of(desk)
    assert ticket["requester"]["slack_user_id"] == ALICE
    assert ticket["requester"]["email"] is None
    assert "users:read.email" in caplog.text


async def test_users_info_is_asked_once_per_user_while_cached(desk: SlackDesk) -> None:
    await desk.event(dm("VPN is down", desk.next_ts()), event_id="Ev1")
    await desk.event(dm("Printer jammed", desk.next_ts()), event_id="Ev2")
    assert len(desk.api.called("users.info")) == 1


# ---- reliability ---------------------------------------------------------------------------
async def test_a_slow_slack_api_does_not_hold_up_the_ack_and_the_mention_is_stored(
    desk: SlackDesk,
) -> None:
    # users.info and chat.getPermalink answer only once `slack_answers` is set, after the ack.
    slack_answers = asyncio.Event()
    desk.api.held = {"users.info": slack_answers, "chat.getPermalink": slack_answers}
    ts = desk.next_ts()
    mention = channel_message(f"<@{BOT_USER_ID}> printer on fire", ts, user=BOB, kind="app_mention")
    try:
        # A hang guard, not a stopwatch: the Web API client alone would wait 10 s per call.
        async with asyncio.timeout(8):
            status, _ = await desk.event(mention)
        assert status == 200 and not slack_answers.is_set()
    finally:
        slack_answers.set()
    ticket = await ticket_of(desk)
    assert ticket["requester"]["slack_user_id"] == BOB
    assert ticket["requester"]["email"] is None
    assert ticket["contacts"][0]["external_id"] == f"{GENERAL}:{ts}"
    assert "example.slack.com/archives" not in ticket["contacts"][0]["text"]


class _DatabaseDown:
    async def submit(self, contact: Contact) -> IntakeResult:
        raise TemporaryIntakeError("database unavailable")


async def test_when_nothing_can_be_stored_slack_gets_503_and_its_retry_succeeds(
    desk: SlackDesk,
) -> None:
    [channel] = [c for c in desk.harness.gw.webhook_channels if isinstance(c, SlackChannel)]
    working = channel.listeners._intake
    channel.listeners._intake = _DatabaseDown()
    event = dm("VPN is down", desk.next_ts())
    status, body = await desk.event(event, event_id="Ev1")
    assert status == 503 and body == ""
    channel.listeners._intake = working
    status, _ = await desk.event(event, event_id="Ev1", headers={"X-Slack-Retry-Num": "1"})
    assert status == 200
    assert len(await desk.slack_tickets()) == 1


async def test_a_missing_signing_secret_keeps_slack_off_and_says_which_variable(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.serve"):
        async with slack_desk(tmp_path, sqlite_url, without=("SPOC_SLACK_SIGNING_SECRET",)) as (
            desk,
            _,
        ):
            status, _ = await desk.event(dm("VPN is down", desk.next_ts()))
            assert status == 404
            assert desk.api.calls == []
    assert "SPOC_SLACK_SIGNING_SECRET is not set" in caplog.text


async def test_when_slack_cannot_say_who_we_are_the_event_gets_503_not_a_silent_200(
    desk: SlackDesk,
) -> None:
    [channel] = [c for c in desk.harness.gw.webhook_channels if isinstance(c, SlackChannel)]
    channel.identity._result = None  # as if auth.test had not been asked yet
    desk.api.failures["auth.test"] = [500, 500]  # the client retries nothing; both fail
    event = dm("VPN is down", desk.next_ts())
    status, body = await desk.event(event, event_id="Ev1")
    assert status == 503 and body == ""
    assert await desk.slack_tickets() == []
    desk.api.failures.clear()
    status, _ = await desk.event(event, event_id="Ev1", headers={"X-Slack-Retry-Num": "1"})
    assert status == 200 and len(await desk.slack_tickets()) == 1


async def test_a_colleague_chatting_in_a_ticket_thread_is_not_added_to_it(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    await desk.event(channel_message(f"<@{BOT_USER_ID}> wifi is flaky", ts, kind="app_mention"))
    colleague = channel_message("same here, lol", desk.next_ts(), user=BOB, thread_ts=ts)
    await desk.event(colleague, event_id="Ev2")
    own = channel_message("now it is down", desk.next_ts(), thread_ts=ts)
    await desk.event(own, event_id="Ev3")
    [summary] = await desk.slack_tickets()
    ticket = await desk.harness.ticket(summary["ref"])
    assert [c["text"].split("\n")[0] for c in ticket["contacts"] if c["direction"] == "in"] == [
        "wifi is flaky",
        "now it is down",
    ]


async def test_starting_logs_no_bolt_warning_and_bolts_calls_still_carry_the_bot_token(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # bolt warned at every start that the bot token "will be ignored": it is not, and an
    # operator should not learn to skip warnings.
    with caplog.at_level(logging.INFO):
        async with slack_desk(tmp_path, sqlite_url) as (desk, _):
            started = [r for r in caplog.records if r.levelno >= logging.WARNING]
            ts = desk.next_ts()
            status, _ = await desk.event(
                channel_message("<@UBOT> VPN down", ts, kind="app_mention")
            )
    assert started == []
    assert status == 200
    [link] = desk.api.called("chat.getPermalink")  # through bolt's per-request client
    assert link.token == "xoxb-1234-5678-fake"
