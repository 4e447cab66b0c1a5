"""The payload check refuses what bolt would crash on -- and nothing Slack really sends."""

from __future__ import annotations

from typing import Any

import pytest

from channels.slack.payload import MalformedPayload, check_payload

TEAM = {"team_id": "T1", "api_app_id": "A1"}
AUTHORIZATIONS = [{"team_id": "T1", "user_id": "UBOT", "is_bot": True, "enterprise_id": None}]


def event(inner: dict[str, Any]) -> dict[str, Any]:
    return TEAM | {"type": "event_callback", "event": inner, "authorizations": AUTHORIZATIONS,
                   "event_id": "Ev1", "event_time": 1}  # fmt: skip


# Shapes from Slack's reference pages and bolt's own test fixtures.
GENUINE = [
    {"type": "url_verification", "token": "t", "challenge": "abc"},
    {"ssl_check": "1", "token": "t"},
    {"command": "/helpdesk", "text": "", "user_id": "U1", "channel_id": "D1", "team_id": "T1",
     "trigger_id": "1.2.3", "response_url": "https://hooks.slack.com/commands/1"},
    event({"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi",
           "ts": "1.2", "files": [{"id": "F1", "name": "a.png"}]}),
    event({"type": "message", "subtype": "message_changed", "channel": "C1", "hidden": True,
           "ts": "3.4", "message": {"type": "message", "user": "U1", "text": "v2", "ts": "1.2",
           "edited": {"user": "U1", "ts": "3.4"}},
           "previous_message": {"text": "v1", "ts": "1.2"}}),
    event({"type": "message", "subtype": "message_deleted", "channel": "C1", "ts": "3.4",
           "deleted_ts": "1.2", "hidden": True}),
    event({"type": "reaction_added", "user": "U1", "reaction": "ticket", "item_user": "U2",
           "item": {"type": "message", "channel": "C1", "ts": "1.2"}, "event_ts": "3.4"}),
    event({"type": "team_join", "user": {"id": "U9", "team_id": "T1", "profile": {}}}),
    event({"type": "channel_rename", "channel": {"id": "C1", "name": "it", "created": 1}}),
    {"type": "block_actions", "team": {"id": "T1", "domain": "x"}, "user": {"id": "U1"},
     "actions": [{"action_id": "a", "block_id": "b", "type": "button", "value": "v"}],
     "channel": {"id": "C1", "name": "general"}, "container": {"type": "message"}},
    {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"},
     "view": {"id": "V1", "callback_id": "spoc_helpdesk_form", "type": "modal",
              "state": {"values": {"description": {"description_input": {"value": "x"}}}}},
     "response_urls": []},
    {"type": "view_closed", "team": None, "user": {"id": "U1"},
     "view": {"id": "V1", "callback_id": "spoc_helpdesk_form"}, "is_cleared": False},
    {"type": "message_action", "callback_id": "spoc_create_ticket", "team": {"id": "T1"},
     "user": {"id": "U1"}, "channel": {"id": "C1"}, "trigger_id": "1.2.3",
     "message": {"type": "message", "user": "U2", "text": "x", "ts": "1.2"}},
    {"type": "shortcut", "callback_id": "global", "team": {"id": "T1"}, "user": {"id": "U1"}},
    {"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1},
]  # fmt: skip


@pytest.mark.parametrize("payload", GENUINE)
def test_what_slack_really_sends_passes(payload: dict[str, Any]) -> None:
    check_payload(payload)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (event({"type": "message"}) | {"event": None}, "event"),
        ({"type": "event_callback", "team_id": "T1"}, "event"),
        (event({"type": "message", "message": {"user": {"id": 3}}}), "event.message.user.id"),
        ({"type": "view_submission", "view": {"callback_id": "x", "state": {"values": {"a": 1}}}},
         "view.state.values.a"),
        ({"team": {"id": 5}}, "team.id"),
        ({"type": 5}, "type"),
        ([], "body"),
    ],
)  # fmt: skip
def test_the_field_named_is_the_deepest_one_that_is_wrong(payload: Any, field: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        check_payload(payload)
    assert caught.value.field == field and field in str(caught.value)
