"""The Slack sender posts in the ticket's thread and says whether a failure is worth a retry."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.outbound import DeliveryError
from channels.outbound.slack import SlackSender, SlackSenderSettings, slack_text
from tests.unit.channels.slack_stubs import StubClient, api_error

SETTINGS = SlackSenderSettings(bot_token="xoxb-test")


def payload(**kw: Any) -> dict[str, Any]:
    base = {"channel": "C1", "thread_ts": "1700000000.000100", "text": "hi", "ticket_ref": "SD-1"}
    base.update(kw)
    return base


async def test_a_reply_is_posted_in_the_thread() -> None:
    client = StubClient(**{"chat.postMessage": {"ok": True, "ts": "1800000000.000001"}})
    ts = await SlackSender(SETTINGS, client).send(payload())  # type: ignore[arg-type]
    assert ts == "1800000000.000001"
    assert client.calls == [
        (
            "chat.postMessage",
            {
                "channel": "C1",
                "text": "hi",
                "unfurl_links": False,
                "thread_ts": "1700000000.000100",
            },
        )
    ]


@pytest.mark.parametrize("thread_ts", [None, "view-V1", ""])
async def test_a_thread_key_that_is_not_a_timestamp_posts_top_level(thread_ts: str | None) -> None:
    client = StubClient()
    await SlackSender(SETTINGS, client).send(payload(channel="U1", thread_ts=thread_ts))  # type: ignore[arg-type]
    assert "thread_ts" not in client.calls[0][1]


@pytest.mark.parametrize(
    ("failure", "permanent"),
    [
        (api_error("channel_not_found"), True),
        (api_error("invalid_auth"), True),
        (api_error("ratelimited", status=429), False),
        (api_error("internal_error", status=500), False),
        (api_error("something_new"), False),
        (aiohttp.ClientConnectionError("refused"), False),
        (TimeoutError(), False),
    ],
)
async def test_failures_are_permanent_only_when_a_retry_cannot_help(
    failure: Exception, permanent: bool
) -> None:
    sender = SlackSender(SETTINGS, StubClient(**{"chat.postMessage": failure}))  # type: ignore[arg-type]
    with pytest.raises(DeliveryError) as caught:
        await sender.send(payload())
    assert caught.value.permanent is permanent


@pytest.mark.parametrize("bad", [payload(text=""), payload(channel=None), payload(text=7)])
async def test_a_malformed_payload_is_permanent_and_nothing_is_posted(bad: dict[str, Any]) -> None:
    client = StubClient()
    with pytest.raises(DeliveryError) as caught:
        await SlackSender(SETTINGS, client).send(bad)  # type: ignore[arg-type]
    assert caught.value.permanent and client.calls == []


# ---- wording (slack_text): the router's facts as Slack mrkdwn ---------------------------------


def test_a_payload_worded_before_the_upgrade_is_posted_escaped_as_it_was() -> None:
    old = {"channel": "C1", "text": "Thanks: logged as *SD-1*. <Ctrl>", "ticket_ref": "SD-1"}
    assert slack_text(old) == "Thanks: logged as *SD-1*. &lt;Ctrl&gt;"


def test_the_ack_names_the_ref_in_bold_and_escapes_the_name() -> None:
    said = slack_text(payload(event="ack", text=None, requester_name="Bob <admin>"))
    assert said.startswith("Thanks Bob &lt;admin&gt;: your request is logged as *SD-1*.")
    assert "<" not in said


def test_a_reply_with_markup_characters_round_trips() -> None:
    said = slack_text(payload(event="reply", text="Try <Ctrl> & <@U0BOB>"))
    assert said == "Try &lt;Ctrl&gt; &amp; &lt;@U0BOB&gt;"


def test_a_status_change_and_an_escalation_read_as_sentences_with_the_ref_bold() -> None:
    status = payload(event="status", status="resolved", text="swapped <the> board")
    assert slack_text(status) == "*SD-1* is resolved: swapped &lt;the&gt; board"
    assert slack_text(payload(event="status", status="closed", text="")) == "*SD-1* is closed."
    moved = payload(event="escalated", group="network & <infra>", text="needs l2")
    assert slack_text(moved) == "*SD-1* is now with network &amp; &lt;infra&gt;: needs l2"


async def test_an_ack_is_posted_worded_not_as_raw_facts() -> None:
    client = StubClient()
    await SlackSender(SETTINGS, client).send(payload(event="ack", text=None))  # type: ignore[arg-type]
    assert "*SD-1*" in client.calls[0][1]["text"]


async def test_an_unknown_event_is_permanent_and_nothing_is_posted() -> None:
    client = StubClient()
    with pytest.raises(DeliveryError) as caught:
        await SlackSender(SETTINGS, client).send(payload(event="survey"))  # type: ignore[arg-type]
    assert caught.value.permanent and client.calls == []
