"""Slack Socket Mode acks: sent only once the contact is committed, never for a failed store, and
an envelope that was in flight when the socket dropped is stored once after Slack redelivers it.

The gateway's Slack channel keeps its real intake (router and SQLite) behind a wrapper the test
controls: :class:`HeldIntake` holds a submit until released (and records every commit),
:class:`FailingIntake` fails like a database that is down. Whether an ack was *not* sent is
checked after a barrier: another envelope (a bot's message, which the app ignores and acks at
once) sent later on the same connection has been acked, so an earlier ack would have arrived
before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from channels.slack import SlackChannel
from normalizer.contact import Contact
from normalizer.intake import Intake, IntakeResult, TemporaryIntakeError
from tests.fakes.slack_socket import FakeSlackSocket
from tests.integration.slack_support import SlackDesk, dm, event_callback, slack_desk

WAIT_SECONDS = 10.0


@dataclass
class HeldIntake:
    """Holds the first ``hold`` submits until :attr:`release` is set; the rest pass through.

    Every committed result is kept in :attr:`results`, in commit order.
    """

    inner: Intake
    hold: int = 1
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    results: list[IntakeResult] = field(default_factory=list)
    _calls: int = 0
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    async def submit(self, contact: Contact) -> IntakeResult:
        self._calls += 1
        if self._calls <= self.hold:
            self.entered.set()
            await self.release.wait()
        result = await self.inner.submit(contact)
        self.results.append(result)
        self._done.set()
        return result

    async def wait_results(self, count: int) -> list[IntakeResult]:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.results) < count:
                self._done.clear()
                await self._done.wait()
        return self.results


@dataclass
class FailingIntake:
    """Fails the first ``failures`` submits with ``TemporaryIntakeError``, then stores."""

    inner: Intake
    failures: int = 1
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    _calls: int = 0

    async def submit(self, contact: Contact) -> IntakeResult:
        self._calls += 1
        if self._calls <= self.failures:
            self.failed.set()
            raise TemporaryIntakeError("database unavailable")
        return await self.inner.submit(contact)


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[SlackDesk, FakeSlackSocket]]:
    async with slack_desk(tmp_path, sqlite_url, mode="socket") as (desk, socket):
        assert socket is not None
        await socket.wait_connections(1)
        yield desk, socket


def slack_channel(desk: SlackDesk) -> SlackChannel:
    [channel] = [c for c in desk.harness.gw.webhook_channels if isinstance(c, SlackChannel)]
    return channel


async def barrier(desk: SlackDesk, socket: FakeSlackSocket) -> None:
    """Every ack the app sent on the newest connection before now has arrived."""
    bot_message: dict[str, Any] = dm("beep", desk.next_ts()) | {"bot_id": "B0OTHER"}
    envelope = await socket.send(event_callback(bot_message, f"EvBarrier{desk.next_ts()}"))
    await socket.wait_ack(envelope)


async def wait_for(event: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        await event.wait()


async def test_the_ack_is_sent_only_after_the_contact_is_committed(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    channel = slack_channel(slack)
    held = HeldIntake(channel.listeners._intake)
    channel.listeners._intake = held
    envelope = await socket.send(event_callback(dm("Monitor is dead", slack.next_ts()), "Ev1"))
    await wait_for(held.entered)
    await barrier(slack, socket)
    assert envelope not in socket.acks  # the contact is not committed yet: no ack
    assert await slack.slack_tickets() == []

    held.release.set()
    assert await socket.wait_ack(envelope) == {"envelope_id": envelope}
    [result] = held.results  # the ack came after this commit returned
    [summary] = await slack.slack_tickets()
    assert summary["ref"] == result.ticket_ref


async def test_when_storing_fails_no_ack_is_sent_and_the_redelivery_is_stored(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    channel = slack_channel(slack)
    failing = FailingIntake(channel.listeners._intake)
    channel.listeners._intake = failing
    body = event_callback(dm("Monitor is dead", slack.next_ts()), "Ev1")
    envelope = await socket.send(body)
    await wait_for(failing.failed)
    await barrier(slack, socket)
    assert envelope not in socket.acks  # Slack will redeliver it
    assert await slack.slack_tickets() == []

    await socket.send(body, retry_attempt=1, envelope_id=envelope)
    await socket.wait_ack(envelope)
    [summary] = await slack.slack_tickets()
    assert len((await slack.harness.ticket(summary["ref"]))["contacts"]) == 1


async def test_an_envelope_in_flight_when_the_socket_drops_is_stored_once_after_redelivery(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    channel = slack_channel(slack)
    held = HeldIntake(channel.listeners._intake)
    channel.listeners._intake = held
    body = event_callback(dm("Monitor is dead", slack.next_ts()), "Ev1")
    envelope = await socket.send(body)
    await wait_for(held.entered)  # received on connection 0, still being stored ...
    await socket.drop()  # ... when the socket goes away: no ack was sent on it
    await socket.wait_connections(2)
    assert envelope not in socket.acks

    # Slack redelivers the unacked envelope on the new connection, while the first delivery is
    # still being stored; the redelivery is stored and acked there.
    await socket.send(body, retry_attempt=1, envelope_id=envelope)
    await socket.wait_ack(envelope, connection=1)
    assert socket.acked_on[envelope] == [1]
    [first] = await held.wait_results(1)
    assert not first.duplicate

    held.release.set()  # the first delivery finishes: the same contact, not a second one
    [_, late] = await held.wait_results(2)
    assert late.duplicate and late.ticket_ref == first.ticket_ref
    [summary] = await slack.slack_tickets()
    assert len((await slack.harness.ticket(summary["ref"]))["contacts"]) == 1


async def test_an_envelope_whose_connection_closes_right_after_sending_is_stored_once(
    desk: tuple[SlackDesk, FakeSlackSocket],
) -> None:
    slack, socket = desk
    channel = slack_channel(slack)
    watched = HeldIntake(channel.listeners._intake, hold=0)
    channel.listeners._intake = watched
    body = event_callback(dm("Keyboard gone", slack.next_ts()), "Ev1")
    envelope = await socket.send(body, then_drop=True)
    await socket.wait_connections(2)
    # Whatever became of the ack of the first delivery, Slack redelivers the envelope: it is
    # acked on the new connection, and both deliveries make one contact.
    await socket.send(body, retry_attempt=1, envelope_id=envelope)
    await socket.wait_ack(envelope, connection=1)
    results = await watched.wait_results(2)
    assert sorted(r.duplicate for r in results) == [False, True]
    [summary] = await slack.slack_tickets()
    assert len((await slack.harness.ticket(summary["ref"]))["contacts"]) == 1
