"""Slack over Socket Mode: the same listeners, reached through a WebSocket the app opens.

The fake Web API answers ``apps.connections.open`` with the URL of a local fake Socket Mode
server (``tests.fakes.slack_socket``), which pushes envelopes and records the app's acks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.slack_socket import FakeSlackSocket
from tests.integration.slack_support import (
    ALICE,
    APP_TOKEN,
    DM,
    SlackDesk,
    dm,
    event_callback,
    slack_desk,
)


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[SlackDesk, FakeSlackSocket]]:
    async with slack_desk(tmp_path, sqlite_url, mode="socket") as (desk, socket):
        assert socket is not None
        await socket.wait_connections(1)
        yield desk, socket


async def test_socket_mode_connects_with_the_app_token_and_serves_no_http_route(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, _ = desk
    [opened] = slack.api.called("apps.connections.open")
    assert opened.token == APP_TOKEN
    status, _ = await slack.event(dm("hello", slack.next_ts()))
    assert status == 404


async def test_a_dm_over_the_socket_is_acked_after_it_is_stored(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    ts = slack.next_ts()
    envelope = await socket.send(event_callback(dm("Monitor is dead", ts), "Ev1"))
    ack = await socket.wait_ack(envelope)
    assert ack == {"envelope_id": envelope}
    [summary] = await slack.slack_tickets()  # committed before the ack went out
    ticket = await slack.harness.ticket(summary["ref"])
    assert ticket["requester"]["slack_user_id"] == ALICE
    [posted] = await slack.api.wait_for("chat.postMessage")
    assert posted.args["channel"] == DM and posted.args["thread_ts"] == ts


async def test_a_redelivered_envelope_is_stored_once(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    body = event_callback(dm("Monitor is dead", slack.next_ts()), "Ev1")
    first = await socket.send(body)
    again = await socket.send(body, retry_attempt=1)
    await socket.wait_ack(first)
    await socket.wait_ack(again)
    [summary] = await slack.slack_tickets()
    assert len((await slack.harness.ticket(summary["ref"]))["contacts"]) == 1


async def test_after_slack_asks_for_a_refresh_the_app_reconnects_and_loses_nothing(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    await socket.refresh()
    await socket.wait_connections(2)
    envelope = await socket.send(event_callback(dm("Keyboard gone", slack.next_ts()), "Ev9"))
    await socket.wait_ack(envelope)
    assert len(slack.api.called("apps.connections.open")) >= 2
    assert len(await slack.slack_tickets()) == 1


async def test_the_helpdesk_command_over_the_socket_opens_the_modal(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    command = {
        "command": "/helpdesk",
        "text": "",
        "user_id": ALICE,
        "channel_id": DM,
        "team_id": "T0001",
        "trigger_id": "1337.42.abcdef",
    }
    envelope = await socket.send(command, kind="slash_commands")
    await socket.wait_ack(envelope)
    [opened] = slack.api.called("views.open")
    assert opened.args["trigger_id"] == "1337.42.abcdef"


async def test_after_the_socket_drops_the_app_reconnects_and_loses_nothing(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    await socket.drop()
    await socket.wait_connections(2)
    envelope = await socket.send(event_callback(dm("Mouse gone", slack.next_ts()), "Ev7"))
    await socket.wait_ack(envelope)
    assert len(await slack.slack_tickets()) == 1


async def test_a_malformed_envelope_over_the_socket_is_acked_and_the_client_carries_on(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    bad = await socket.send(event_callback({}, "Ev1") | {"event": None})
    assert await socket.wait_ack(bad) == {"envelope_id": bad}
    bad_view = await socket.send(
        {"type": "view_submission", "user": {"id": ALICE}, "view": None}, kind="interactive"
    )
    await socket.wait_ack(bad_view)
    assert await slack.slack_tickets() == []
    good = await socket.send(event_callback(dm("Monitor is dead", slack.next_ts()), "Ev2"))
    await socket.wait_ack(good)
    assert len(socket.connections) == 1 and len(await slack.slack_tickets()) == 1
