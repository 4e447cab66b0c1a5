"""The Slack listeners: what each event becomes, and what Slack hears when storing fails."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest
from slack_bolt.async_app import AsyncBoltContext

from channels.slack.app import (
    SlackChannelSettings,
    SlackListeners,
    SlackUnavailable,
    helpdesk_view,
    on_error,
)
from channels.slack.files import SlackFiles
from channels.slack.users import SlackUsers
from normalizer.contact import Contact, Party
from normalizer.intake import ContactRejectedError, IntakeResult, TemporaryIntakeError
from normalizer.revision import ContactRevision, RevisionResult
from tests.unit.channels.slack_stubs import StubClient

SETTINGS = SlackChannelSettings(bot_token="xoxb-t", signing_secret="s", reaction="ticket")
USER = {"ok": True, "user": {"id": "U1", "profile": {"email": "a@example.org"}}}
LINK = "https://example.slack.com/archives/C1/p1700000000000100"


class Intake:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.contacts: list[Contact] = []

    async def submit(self, contact: Contact) -> IntakeResult:
        if self.error is not None:
            raise self.error
        self.contacts.append(contact)
        return IntakeResult("SD-1", 1, 1, created=True, duplicate=False, thread_reason="new")


def listeners(
    intake: Intake,
    known: bool | Exception = False,
    client: StubClient | None = None,
    settings: SlackChannelSettings = SETTINGS,
) -> tuple[SlackListeners, AsyncBoltContext]:
    client = client or StubClient(
        **{"users.info": USER, "chat.getPermalink": {"ok": True, "permalink": LINK}}
    )

    async def known_thread(key: str, user_id: str) -> bool:
        if isinstance(known, Exception):
            raise known
        return known

    users = SlackUsers(client)
    context = AsyncBoltContext({"bot_user_id": "UBOT", "client": client})
    files = SlackFiles(settings.bot_token, "http://slack.invalid/api/", 1.0)
    revisions = Revisions()
    return SlackListeners(settings, intake, users, known_thread, revisions, files), context


class Revisions:
    """Records what it is given; finds no contact unless told."""

    def __init__(self) -> None:
        self.seen: list[ContactRevision] = []

    async def revise(self, revision: ContactRevision) -> RevisionResult | None:
        self.seen.append(revision)
        return None


def dm(**kw: Any) -> dict[str, Any]:
    event = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1",
             "text": "help", "ts": "1700000000.000100"}  # fmt: skip
    event.update(kw)
    return event


async def test_a_dm_is_submitted_and_acknowledged() -> None:
    intake = Intake()
    handler, context = listeners(intake)
    assert await handler.on_message(dm(), context) is None
    [contact] = intake.contacts
    assert contact.sender.email == "a@example.org" and contact.external_id == "D1:1700000000.000100"


async def test_when_the_desk_cannot_store_slack_gets_a_503_and_retries() -> None:
    handler, context = listeners(Intake(TemporaryIntakeError("database down")))
    response = await handler.on_message(dm(), context)
    assert response is not None and response.status == 503 and response.body == ""


async def test_a_refused_contact_is_acknowledged_so_slack_does_not_retry() -> None:
    handler, context = listeners(Intake(ContactRejectedError("no", field="from")))
    assert await handler.on_message(dm(), context) is None


async def test_a_channel_message_outside_a_ticket_thread_is_not_submitted() -> None:
    intake = Intake()
    handler, context = listeners(intake, known=False)
    channel = dm(channel="C1", channel_type="channel", thread_ts="1699999999.000100")
    assert await handler.on_message(channel, context) is None
    assert await handler.on_message({**channel, "thread_ts": None}, context) is None
    assert intake.contacts == []


async def test_a_reply_in_a_ticket_thread_in_a_channel_is_submitted() -> None:
    intake = Intake()
    handler, context = listeners(intake, known=True)
    await handler.on_message(dm(channel="C1", channel_type="channel", thread_ts="1.2"), context)
    assert [c.thread.chat_thread for c in intake.contacts] == ["C1:1.2"]


async def test_when_the_thread_cannot_be_looked_up_slack_gets_a_503() -> None:
    handler, context = listeners(Intake(), known=TemporaryIntakeError("database down"))
    channel = dm(channel="C1", channel_type="channel", thread_ts="1699999999.000100")
    response = await handler.on_message(channel, context)
    assert response is not None and response.status == 503


async def test_a_reaction_other_than_the_configured_one_does_nothing() -> None:
    intake = Intake()
    handler, context = listeners(intake)
    reaction = {"type": "reaction_added", "reaction": "eyes",
                "item": {"type": "message", "channel": "C1", "ts": "1.2"}}  # fmt: skip
    assert await handler.on_reaction(reaction, context) is None
    assert intake.contacts == []


def mention(ts: str = "1700000000.000100") -> dict[str, Any]:
    return {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT> help", "ts": ts}


async def test_a_mention_carries_its_author_and_permalink() -> None:
    intake = Intake()
    handler, context = listeners(intake)
    assert await handler.on_mention(mention(), context) is None
    [contact] = intake.contacts
    assert contact.sender.email == "a@example.org" and LINK in contact.text


async def test_when_slack_does_not_answer_the_look_ups_the_event_is_stored_without_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # users.info and chat.getPermalink answer only once `slack_answers` is set, which happens
    # after both events were handled: without a bound on the look-ups this test would hang.
    client = StubClient(
        **{"users.info": USER, "chat.getPermalink": {"ok": True, "permalink": LINK}}
    )
    slack_answers = asyncio.Event()
    client.held = {"users.info": slack_answers, "chat.getPermalink": slack_answers}
    settings = dataclasses.replace(SETTINGS, lookup_timeout_seconds=0.05)
    intake = Intake()
    handler, context = listeners(intake, client=client, settings=settings)
    try:
        with caplog.at_level(logging.INFO, logger="channels.slack.app"):
            assert await handler.on_mention(mention(), context) is None
            assert await handler.on_mention(mention("1700000000.000200"), context) is None
        assert not slack_answers.is_set()
    finally:
        slack_answers.set()
    assert [c.sender for c in intake.contacts] == [Party(slack_user_id="U1")] * 2
    assert all(LINK not in c.text for c in intake.contacts)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per slow method, not one per event
    assert any("users.info" in w for w in warnings)
    assert any("chat.getPermalink" in w for w in warnings)


async def test_when_users_info_does_not_answer_the_modal_is_stored_with_the_slack_id() -> None:
    client = StubClient(**{"users.info": USER})
    slack_answers = asyncio.Event()
    client.held = {"users.info": slack_answers}
    settings = dataclasses.replace(SETTINGS, lookup_timeout_seconds=0.05)
    intake = Intake()
    handler, _ = listeners(intake, client=client, settings=settings)
    values = {
        "description": {"description_input": {"type": "plain_text_input", "value": "VPN down"}}
    }
    view = {"id": "V1", "state": {"values": values}}

    async def ack(**_: Any) -> None:
        pass

    try:
        assert await handler.on_view(ack, view, {"user": {"id": "U1"}}) is None
    finally:
        slack_answers.set()
    assert [c.sender for c in intake.contacts] == [Party(slack_user_id="U1")]


@pytest.mark.parametrize("seconds", [0.0, 3.0, -1.0])
def test_settings_refuse_a_look_up_bound_outside_slacks_ack_deadline(seconds: float) -> None:
    with pytest.raises(ValueError, match="lookup_timeout_seconds"):
        SlackChannelSettings(bot_token="xoxb-t", signing_secret="s", lookup_timeout_seconds=seconds)


def test_the_modal_leaves_out_categories_when_there_are_none() -> None:
    view = helpdesk_view(())
    assert [b["block_id"] for b in view["blocks"]] == ["urgency", "description"]
    assert "initial_value" not in view["blocks"][-1]["element"]


@pytest.mark.parametrize(
    ("kw", "missing"),
    [({"mode": "http"}, "signing secret"), ({"mode": "socket"}, "app token")],
)
def test_settings_refuse_a_mode_without_its_secret(kw: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        SlackChannelSettings(bot_token="xoxb-t", **kw)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SlackUnavailable("auth.test failed"), 503),
        (TemporaryIntakeError("database down"), 503),
        (RuntimeError("a bug"), 500),
    ],
)
async def test_errors_answer_slack_without_a_body_and_are_logged(
    error: Exception, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    response = await on_error(error, {"type": "event_callback"})
    assert (response.status, response.body) == (status, "")
    assert str(error) in caplog.text


async def test_mentions_are_looked_up_together_with_the_sender_and_the_link() -> None:
    # One after another, three slow look-ups would take three times the bound Slack allows.
    client = StubClient(
        **{"users.info": USER, "chat.getPermalink": {"ok": True, "permalink": LINK}}
    )
    slack_answers = asyncio.Event()
    client.held = {"users.info": slack_answers, "chat.getPermalink": slack_answers}
    intake = Intake()
    # Each look-up may take 2.9 s: all four must be asked before the first could give up.
    settings = dataclasses.replace(SETTINGS, lookup_timeout_seconds=2.9)
    handler, context = listeners(intake, client=client, settings=settings)
    event = mention() | {"text": "<@UBOT> ask <@U2> and <@U3>"}
    task = asyncio.create_task(handler.on_mention(event, context))
    try:
        async with asyncio.timeout(2.5):
            while len(client.calls) < 4:  # noqa: ASYNC110 - the stub has no event to wait on
                await asyncio.sleep(0)
        asked = sorted((m, a.get("user", "")) for m, a in client.calls)
        assert asked == [
            ("chat.getPermalink", ""),
            ("users.info", "U1"),
            ("users.info", "U2"),
            ("users.info", "U3"),
        ]
    finally:
        slack_answers.set()
    assert await task is None
    [contact] = intake.contacts
    assert contact.text.startswith("ask @U2 and @U3")  # Slack gave no names: the ids stay
