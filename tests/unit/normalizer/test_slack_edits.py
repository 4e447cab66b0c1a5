"""Edits and deletions of Slack messages, as Slack sends them, become revisions of contacts."""

from __future__ import annotations

from typing import Any

from normalizer.chat_edits import contact_revision, is_revision, parse_revision
from normalizer.contact import Channel
from normalizer.revision import RevisionKind

# Shaped as Slack's message_changed / message_deleted reference examples, in a DM.
CHANGED: dict[str, Any] = {
    "type": "message",
    "subtype": "message_changed",
    "hidden": True,
    "channel": "D0ALICE",
    "channel_type": "im",
    "ts": "1700000100.000200",
    "event_ts": "1700000100.000200",
    "message": {
        "type": "message",
        "user": "U0ALICE",
        "text": "VPN down &amp; <@U0BOB> cannot log in either",
        "ts": "1700000000.000100",
        "edited": {"user": "U0ALICE", "ts": "1700000100.000000"},
    },
    "previous_message": {
        "type": "message",
        "user": "U0ALICE",
        "text": "VPN down",
        "ts": "1700000000.000100",
    },
}
DELETED: dict[str, Any] = {
    "type": "message",
    "subtype": "message_deleted",
    "hidden": True,
    "channel": "D0ALICE",
    "channel_type": "im",
    "ts": "1700000200.000300",
    "deleted_ts": "1700000000.000100",
    "previous_message": {
        "type": "message",
        "user": "U0ALICE",
        "text": "VPN down",
        "ts": "1700000000.000100",
    },
}


def test_an_edit_is_a_new_version_of_the_message_as_plain_text() -> None:
    assert is_revision(CHANGED)
    found = parse_revision(CHANGED)
    assert found is not None and found.mentioned_users == ("U0BOB",)
    revision = contact_revision(found, {"U0BOB": "Bob"})
    assert revision.channel is Channel.SLACK and revision.kind is RevisionKind.EDITED
    assert revision.external_ids[0] == "D0ALICE:1700000000.000100"
    assert "shortcut:D0ALICE:1700000000.000100" in revision.external_ids
    assert revision.text == "VPN down & @Bob cannot log in either"
    assert revision.revised_at == "1700000100.000000"


def test_a_deletion_names_the_deleted_message() -> None:
    found = parse_revision(DELETED)
    assert found is not None
    revision = contact_revision(found)
    assert revision.kind is RevisionKind.DELETED and revision.text is None
    assert revision.external_ids[0] == "D0ALICE:1700000000.000100"
    assert revision.revised_at == "1700000200.000300"


def test_a_link_preview_that_leaves_the_text_alone_is_no_edit() -> None:
    unfurled = CHANGED | {"message": CHANGED["message"] | {"text": "VPN down"}}
    assert parse_revision(unfurled) is None


def test_edits_and_deletions_of_bot_messages_are_not_revisions() -> None:
    assert parse_revision(CHANGED | {"message": CHANGED["message"] | {"bot_id": "B1"}}) is None
    bot_post = DELETED["previous_message"] | {"bot_id": "B1"}
    assert parse_revision(DELETED | {"previous_message": bot_post}) is None


def test_malformed_revisions_are_ignored_not_raised() -> None:
    assert parse_revision(CHANGED | {"message": None}) is None
    assert parse_revision(CHANGED | {"channel": 5}) is None
    assert parse_revision(DELETED | {"deleted_ts": "yesterday"}) is None
    assert not is_revision({"type": "message", "subtype": "file_share"})


def test_a_thread_root_deleted_under_its_replies_is_a_deletion_not_an_edit() -> None:
    tombstone = CHANGED["message"] | {
        "subtype": "tombstone",
        "text": "This message was deleted.",
        "user": "USLACKBOT",
        "hidden": True,
    }
    found = parse_revision(CHANGED | {"message": tombstone})
    assert found is not None and found.kind is RevisionKind.DELETED
    assert found.ts == "1700000000.000100" and found.revised_at == CHANGED["ts"]
