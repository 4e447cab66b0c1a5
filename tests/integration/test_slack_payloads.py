"""Signed but malformed Slack payloads: 400 naming the field (Socket Mode: acked), never 500.

Before bolt saw them, ``"event": null``, ``"actions": null`` or a modal without ``state``
raised inside bolt's middleware: HTTP 500, and over Socket Mode no ack, so Slack redelivered
the envelope again and again. Nothing of such a payload may be stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.slack_support import ALICE, SlackDesk, dm, event_callback, slack_desk

USER = {"id": ALICE, "team_id": "T0001"}
VIEW = {"id": "V1", "callback_id": "spoc_helpdesk_form", "type": "modal"}


def interaction(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "team": {"id": "T0001"}, "user": USER, "api_app_id": "A0001", **fields}


EVENTS = [
    pytest.param({"event": None}, "event", id="event-null"),
    pytest.param({"event": "x"}, "event", id="event-string"),
    pytest.param({"event": {"text": "hi"}}, "event.type", id="event-without-type"),
    pytest.param(
        {"event": dm("hi", "1700000001.000100") | {"user": 7}}, "event.user", id="event-user-number"
    ),
    pytest.param({"authorizations": "x"}, "authorizations", id="authorizations-string"),
]
INTERACTIONS = [
    pytest.param(interaction("block_actions", actions=None), "actions", id="actions-null"),
    pytest.param(interaction("block_actions", actions=[]), "actions", id="actions-empty"),
    pytest.param(interaction("block_actions", actions=["x"]), "actions.0", id="action-string"),
    pytest.param(interaction("view_submission", view=None), "view", id="view-null"),
    pytest.param(
        interaction("view_submission", view=VIEW | {"state": None}), "view.state", id="state-null"
    ),
    pytest.param(
        interaction("view_submission", view=VIEW | {"state": {"values": []}}),
        "view.state.values",
        id="values-list",
    ),
    pytest.param(interaction("view_submission", view=VIEW), "view.state", id="state-missing"),
    pytest.param(
        interaction("message_action", callback_id="spoc_create_ticket", message=None),
        "message",
        id="shortcut-message-null",
    ),
]


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[SlackDesk]:
    async with slack_desk(tmp_path, sqlite_url) as (desk, _):
        yield desk


@pytest.mark.parametrize(("change", "field"), EVENTS)
async def test_a_malformed_event_callback_gets_400_naming_the_field(
    desk: SlackDesk, change: dict[str, Any], field: str
) -> None:
    body = event_callback(dm("printer broken", desk.next_ts()), "Ev1") | change
    status, text = await desk.post(json.dumps(body).encode(), "application/json")
    assert status == 400, text
    assert json.loads(text)["field"] == field
    assert await desk.slack_tickets() == [] and desk.api.called("users.info") == []


@pytest.mark.parametrize(("payload", "field"), INTERACTIONS)
async def test_a_malformed_interaction_gets_400_naming_the_field(
    desk: SlackDesk, payload: dict[str, Any], field: str
) -> None:
    status, text = await desk.interaction(payload)
    assert status == 400, text
    assert json.loads(text) == {"error": json.loads(text)["error"], "field": field}
    assert field in json.loads(text)["error"]
    assert await desk.slack_tickets() == []


async def test_a_json_array_gets_400_naming_the_body(desk: SlackDesk) -> None:
    status, text = await desk.post(b'[{"type": "event_callback"}]', "application/json")
    assert status == 400 and json.loads(text)["field"] == "body"


async def test_a_well_formed_event_still_opens_a_ticket(desk: SlackDesk) -> None:
    status, _ = await desk.event(dm("printer broken", desk.next_ts()))
    assert status == 200 and len(await desk.slack_tickets()) == 1
