"""Slack messages, shortcuts and the /helpdesk form become contacts (pure conversions)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from normalizer.chat import (
    FileNotKept,
    HelpdeskForm,
    contact_from_form,
    contact_from_message,
    contact_from_shortcut,
    form_from_view_state,
    is_slack_ts,
    parse_message,
    skip_reason,
    subject_of,
    ts_to_datetime,
)
from normalizer.contact import Attachment, Channel, Party
from normalizer.intake import ContactRejectedError

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
ALICE = Party(slack_user_id="U0ALICE", email="alice@example.org", name="Alice")


def event(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "message",
        "channel": "D0ALICE",
        "channel_type": "im",
        "user": "U0ALICE",
        "text": "Laptop is dead",
        "ts": "1700000000.000100",
    }
    base.update(kw)
    return base


def test_a_top_level_dm_is_keyed_by_its_own_ts() -> None:
    contact = contact_from_message(parse_message(event()), sender=ALICE, received_at=NOW)
    assert contact.channel is Channel.SLACK
    assert contact.external_id == "D0ALICE:1700000000.000100"
    assert contact.thread.chat_thread == "D0ALICE:1700000000.000100"
    assert contact.subject == "Laptop is dead" and contact.text == "Laptop is dead"
    assert contact.sender == ALICE


def test_a_reply_in_a_thread_is_keyed_by_the_threads_root() -> None:
    message = parse_message(event(ts="1700000099.000200", thread_ts="1700000000.000100"))
    contact = contact_from_message(message, sender=ALICE, received_at=NOW)
    assert contact.external_id == "D0ALICE:1700000099.000200"
    assert contact.thread.chat_thread == "D0ALICE:1700000000.000100"


def test_a_mention_loses_the_bots_mention_and_keeps_the_permalink() -> None:
    message = parse_message(event(channel="C0GEN", channel_type=None, text="<@UBOT> wifi down"))
    link = "https://example.slack.com/archives/C0GEN/p1700000000000100"
    contact = contact_from_message(
        message, sender=ALICE, received_at=NOW, permalink=link, bot_user_id="UBOT"
    )
    assert contact.subject == "wifi down"
    assert contact.text == f"wifi down\n\nSlack: {link}"
    assert not message.is_dm


def test_a_message_with_only_the_bots_mention_is_refused() -> None:
    with pytest.raises(ContactRejectedError):
        contact_from_message(
            parse_message(event(text="<@UBOT>")), sender=ALICE, received_at=NOW, bot_user_id="UBOT"
        )


def test_subject_is_the_first_line_of_the_plain_text_with_mentions_readable_and_capped() -> None:
    message = parse_message(event(text="\n\nhello <@U123> &amp; <@U456>\nsecond line"))
    contact = contact_from_message(
        message, sender=ALICE, received_at=NOW, names={"U123": "Bob Builder"}
    )
    assert contact.subject == "hello @Bob Builder & @U456"
    long = subject_of("x" * 500)
    assert len(long) == 120 and long.endswith("…")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"bot_id": "B1"}, "bot"),
        ({"subtype": "message_changed"}, "subtype:message_changed"),
        ({"subtype": "channel_join"}, "subtype:channel_join"),
        ({"user": "UBOT"}, "own-message"),
        ({"user": None}, "no-user"),
    ],
)
def test_machine_messages_edits_and_our_own_are_skipped(
    changes: dict[str, Any], reason: str
) -> None:
    assert skip_reason(event(**changes), bot_user_id="UBOT") == reason


def test_a_persons_message_and_file_share_are_not_skipped() -> None:
    assert skip_reason(event(), "UBOT") is None
    assert skip_reason(event(subtype="file_share"), "UBOT") is None


@pytest.mark.parametrize(
    "changes",
    [
        {"channel": None},
        {"channel": "not an id"},
        {"ts": "yesterday"},
        {"ts": None},
        {"user": 7},
        {"thread_ts": "soon"},
    ],
)
def test_malformed_messages_are_refused_with_the_field(changes: dict[str, Any]) -> None:
    with pytest.raises(ContactRejectedError) as caught:
        parse_message(event(**changes))
    assert caught.value.field in {"channel", "ts", "user", "thread_ts"}


def test_a_shortcut_message_takes_its_channel_from_the_payload() -> None:
    raw = {"type": "message", "user": "U0BOB", "text": "screen flickers", "ts": "1700000000.5"}
    message = parse_message(raw, channel_id="C0GEN")
    bob = Party(slack_user_id="U0BOB")
    contact = contact_from_shortcut(message, action="shortcut", sender=bob, received_at=NOW)
    assert contact.external_id == "shortcut:C0GEN:1700000000.5"
    assert contact.thread.chat_thread == "C0GEN:1700000000.5"
    assert contact.sender == bob


def test_a_shortcut_on_a_message_without_text_still_makes_a_ticket() -> None:
    message = parse_message(event(text=""), channel_id=None)
    contact = contact_from_shortcut(message, action="reaction", sender=ALICE, received_at=NOW)
    assert contact.text and contact.external_id.startswith("reaction:")


def state(
    description: object, category: str | None = "broken_device", urgency: str = "high"
) -> Any:
    values: dict[str, Any] = {
        "urgency": {"urgency_select": {"selected_option": {"value": urgency}}},
        "description": {"description_input": {"value": description}},
    }
    if category:
        values["category"] = {"category_select": {"selected_option": {"value": category}}}
    return values


def test_the_form_gives_category_urgency_and_description() -> None:
    form = form_from_view_state(state("  Printer on fire  "))
    assert form == HelpdeskForm("broken_device", "high", "Printer on fire")


def test_an_unknown_urgency_and_a_missing_category_are_dropped() -> None:
    form = form_from_view_state(state("x", category=None, urgency="extreme"))
    assert (form.category, form.urgency) == (None, None)


@pytest.mark.parametrize("description", [None, "", "   ", 42])
def test_a_form_without_a_description_is_refused_naming_the_block(description: object) -> None:
    with pytest.raises(ContactRejectedError) as caught:
        form_from_view_state(state(description))
    assert caught.value.field == "description"


def test_a_form_becomes_a_contact_with_hints_and_a_dm_key_unique_to_the_view() -> None:
    form = HelpdeskForm("locked_account", "low", "Locked out of SAP\nsince Monday")
    contact = contact_from_form(form, view_id="V0001", sender=ALICE, received_at=NOW)
    assert contact.external_id == "view:V0001"
    assert contact.thread.chat_thread == "U0ALICE:view-V0001"
    assert contact.hints.category == "locked_account" and contact.hints.urgency == "low"
    assert contact.subject == "Locked out of SAP"


def test_slack_timestamps_are_recognised_and_converted() -> None:
    assert is_slack_ts("1700000000.000100") and not is_slack_ts("view-V1")
    assert not is_slack_ts(None)
    assert ts_to_datetime("1700000000.000100") == datetime(2023, 11, 14, 22, 13, 20, 100, UTC)


def test_received_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError):
        contact_from_message(parse_message(event()), sender=ALICE, received_at=datetime(2026, 1, 1))


def test_control_characters_are_taken_out_of_every_field_a_message_gives() -> None:
    # NUL cannot be stored in PostgreSQL text; ESC and friends rewrite terminals and logs.
    raw = "Printer\x00 on fire\x1b[2J\r\nreally\x07"
    sender = Party(slack_user_id="U0ALICE", name="Alice\x00 \x1bExample")
    contact = contact_from_message(
        parse_message(event(text=raw)), sender=sender, received_at=NOW, permalink="https://x/\x00p"
    )
    assert contact.text == "Printer on fire[2J\nreally\n\nSlack: https://x/ p"
    assert contact.subject == "Printer on fire[2J"
    assert contact.sender.name == "Alice Example"


def test_control_characters_are_taken_out_of_the_form() -> None:
    form = form_from_view_state(state("Locked\x00 out\x1b", category="locked\x00account"))
    assert form == HelpdeskForm("locked account", "high", "Locked out")
    with pytest.raises(ContactRejectedError):
        form_from_view_state(state("\x00\x07"))


def test_message_text_arrives_as_people_wrote_it_with_mentions_named() -> None:
    raw = "&lt;img src=x&gt; &amp; more, ask <@U0BOB> or see <https://w.example|the wiki>"
    contact = contact_from_message(
        parse_message(event(text=raw)), sender=ALICE, received_at=NOW, names={"U0BOB": "Bob"}
    )
    assert contact.text == "<img src=x> & more, ask @Bob or see the wiki (https://w.example)"
    assert contact.subject == contact.text


FILE = {
    "id": "F111",
    "name": "screen.png",
    "title": "screen.png",
    "mimetype": "image/png",
    "filetype": "png",
    "size": 92582,
    "mode": "hosted",
    "is_external": False,
    "url_private": "https://files.slack.com/files-pri/T111-F111/screen.png",
    "url_private_download": "https://files.slack.com/files-pri/T111-F111/download/screen.png",
}


def test_files_of_a_file_share_are_read_and_a_message_of_only_files_is_kept() -> None:
    message = parse_message(event(subtype="file_share", text="", files=[FILE, "junk", {"x": 1}]))
    [shared] = message.files
    assert shared.name == "screen.png" and shared.size == 92582 and not shared.external
    assert shared.url == FILE["url_private_download"]
    kept = Attachment("screen.png", "image/png", "0" * 64, b"png")
    lost = FileNotKept("big.mov", "https://files.slack.com/big.mov", "over 25 MB")
    contact = contact_from_message(message, sender=ALICE, received_at=NOW, files=[kept, lost])
    assert contact.attachments == (kept,)
    assert contact.text == (
        "Shared screen.png, big.mov\n\nFile not kept: big.mov (https://files.slack.com/big.mov):"
        " over 25 MB"
    )
