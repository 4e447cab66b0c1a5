"""A webhook target down (503) for five minutes gets every event once it recovers: the real
router, outbox, dispatcher, forward sender and webhook connector against a real receiver,
with the outbox's clock moved on by hand instead of waiting five minutes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.outbound.webhook import WebhookForwarder, WebhookSettings
from gateway.dispatcher import Dispatcher, DispatcherSettings
from gateway.forwarding import ForwardSender
from gateway.metrics import Metrics
from router.forwards import ForwardRecords
from router.outbox import Outbox
from router.router import Router
from router.schema import metadata
from router.settings import AckSettings, ForwardRule, RouterSettings
from router.store import Store
from router.tickets import TicketService
from tests.fakes.webhook_receiver import SECRET, WebhookReceiver
from tests.unit.router.conftest import email

EVENTS = 5
STEP = timedelta(seconds=5)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    fake = WebhookReceiver()
    await fake.start()
    yield fake
    await fake.stop()


async def test_target_down_for_five_minutes_receives_everything_once_it_recovers(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    settings = RouterSettings(
        forwards=(ForwardRule(name="hook", kind="webhook"),), acks=AckSettings(enabled=False)
    )
    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db")
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    try:
        router = Router(store, settings, clock)
        refs = [
            (await router.submit(email(sender=f"u{i}@example.org"))).ticket_ref
            for i in range(EVENTS)
        ]
        connector = WebhookForwarder(
            WebhookSettings(
                name="hook", url=receiver.url, secret=SECRET, allow_private_network=True
            )
        )
        sender = ForwardSender(
            {"hook": connector}, ForwardRecords(store, clock), TicketService(store, settings, clock)
        )
        dispatcher = Dispatcher(
            Outbox(store, clock),
            {"forward": sender.send},
            Metrics(),
            DispatcherSettings(),
            clock=clock,
            rng=random.Random(7),
        )
        receiver.down = True
        outage_ends = clock.now + timedelta(minutes=5)
        while clock.now < outage_ends:
            await dispatcher.run_once()
            clock.now += STEP
        failed_during_outage = receiver.attempts
        receiver.down = False
        recovered = clock.now
        outbox = Outbox(store, clock)
        while await outbox.depth() and clock.now < recovered + timedelta(minutes=15):
            await dispatcher.run_once()
            clock.now += STEP
        pending = await outbox.depth()
    finally:
        await store.close()

    assert failed_during_outage >= EVENTS * 5  # each event retried through the outage
    assert pending == 0
    assert sorted(receiver.unique) == sorted(f"forward:hook:{ref}:created" for ref in refs)
    assert len(receiver.events) == EVENTS  # once each
    # Backoff doubled to at most ~4 minutes during the outage: all in well within 10 minutes.
    assert clock.now - recovered <= timedelta(minutes=10)
