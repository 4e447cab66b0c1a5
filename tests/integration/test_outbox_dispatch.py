"""The outbox and its dispatcher on a real SQLite file and a real PostgreSQL 15: claims shared by
several instances, the claim token that fences late results, leases that rescue a killed
worker's rows, and retries over the row's whole lifetime. Time is an injected clock; only the
transports are fakes (recording senders)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from channels.outbound import DeliveryError
from gateway.dispatcher import Dispatcher, DispatcherSettings
from gateway.metrics import Metrics
from router.outbox import Outbox, claim_due, enqueue
from router.retry import RetryPolicy
from router.schema import outbox
from router.store import Store, engine_url
from tests.unit.router.conftest import Clock

LEASE = 60.0


@dataclass
class RecordingSender:
    """A transport that records every attempt and fails as told."""

    name: str = "relay"
    failures: list[DeliveryError] = field(default_factory=list)  # raised first, in order
    fail_always: DeliveryError | None = None
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (ticket_ref, key)
    delivered: list[tuple[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set: wait for it (a send that hangs)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    meet: asyncio.Barrier | None = None  # the first send waits here for the other senders'

    async def __call__(self, payload: Mapping[str, Any], *, idempotency_key: str) -> str:
        self.attempts.append((str(payload["ticket_ref"]), idempotency_key))
        self.started.set()
        if self.meet is not None:
            meet, self.meet = self.meet, None
            async with asyncio.timeout(30):  # both dispatchers hold claims at the same time
                await meet.wait()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # let other dispatchers run in between
        if self.failures:
            raise self.failures.pop(0)
        if self.fail_always is not None:
            raise self.fail_always
        self.delivered.append((str(payload["ticket_ref"]), idempotency_key))
        return "250 ok"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def queue(store: Store, clock: Clock, count: int = 1, kind: str = "email.reply") -> list[str]:
    """``count`` rows due now; returns their idempotency keys."""
    keys = [f"reply:m{n}@example.com" for n in range(count)]

    def add(conn: sa.Connection) -> None:
        for n, key in enumerate(keys):
            payload = {"to": f"user{n}@example.org", "text": "hi", "ticket_ref": f"SD-{n}"}
            enqueue(conn, kind, payload, key=key, now=clock.now, recipient=f"user{n}@example.org")

    store.run_sync(add)
    return keys


def row(store: Store, item_id: int = 1) -> Any:
    query = sa.select(outbox).where(outbox.c.id == item_id)
    return store.run_sync(lambda c: c.execute(query).one())


def dispatcher(
    store: Store,
    clock: Clock,
    sender: RecordingSender,
    *,
    batch_size: int = 20,
    lease_seconds: float = LEASE,
    **policy: Any,
) -> Dispatcher:
    settings = DispatcherSettings(
        retry=RetryPolicy(**policy), batch_size=batch_size, lease_seconds=lease_seconds
    )
    return Dispatcher(
        Outbox(store, clock),
        {"email": sender},
        Metrics(),
        settings,
        clock=clock,
        rng=random.Random(5),
    )


async def drain(dispatch: Dispatcher, clock: Clock, store: Store, *, rounds: int) -> None:
    """Run the dispatcher ``rounds`` times, each time moving the clock to the next due row."""
    for _ in range(rounds):
        await dispatch.run_once()
        due = store.run_sync(
            lambda c: c.execute(
                sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending")
            ).scalar()
        )
        if due is None:
            return
        clock.now = max(clock.now, due)


# ---- claims shared by several instances -----------------------------------------------------
async def test_two_dispatchers_claiming_concurrently_never_deliver_a_row_twice(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    keys = queue(stores[0], clock, 300)
    # On PostgreSQL both hold claims at once (SKIP LOCKED is what lets them). SQLite has one
    # write lock for the file: there a busy second writer may wait out the first's whole run.
    shared = stores[0].is_postgres
    meet = asyncio.Barrier(2) if shared else None
    senders = (RecordingSender("a", meet=meet), RecordingSender("b", meet=meet))
    first, second = (
        dispatcher(store, clock, sender, batch_size=7)
        for store, sender in zip(stores, senders, strict=True)
    )

    async def work(d: Dispatcher) -> None:
        while await d.run_once():
            pass

    await asyncio.gather(work(first), work(second), work(first), work(second))

    delivered = [key for sender in senders for _, key in sender.delivered]
    assert sorted(delivered) == sorted(keys)  # every row once, none twice
    assert all(sender.delivered for sender in senders) or not shared
    statuses = stores[0].run_sync(lambda c: set(c.execute(sa.select(outbox.c.status)).scalars()))
    assert statuses == {"done"}


@pytest.mark.postgres
async def test_a_claim_in_progress_elsewhere_neither_blocks_nor_shares_rows_on_postgres(
    pg_url: str, clock: Clock
) -> None:
    from gateway.migrate import upgrade

    upgrade(pg_url)
    store = Store.from_url(pg_url)
    await store.start()
    queue(store, clock, 10)
    engine = sa.create_engine(engine_url(pg_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.begin()
            held = claim_due(conn, now=clock.now, limit=4, lease_seconds=LEASE, skip_locked=True)
            # The other instance claims while the first transaction still holds its rows.
            other = asyncio.create_task(Outbox(store, clock).claim(limit=10))
            finished, _ = await asyncio.wait([other], timeout=10)
            conn.commit()
        claimed = await other
    finally:
        engine.dispose()
        await store.close()
    assert finished, "the second claim waited for the first transaction"
    assert {i.id for i in held} == {1, 2, 3, 4}
    assert {i.id for i in claimed} == set(range(5, 11))


# ---- the claim token fences late results ----------------------------------------------------
async def test_a_late_done_after_the_lease_ran_out_is_refused_and_recorded_once(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock)
    first, second = Outbox(stores[0], clock), Outbox(stores[1], clock)
    [mine] = await first.claim(lease_seconds=LEASE)
    clock.advance(seconds=LEASE + 1)  # the first send hangs past its lease
    [theirs] = await second.claim(lease_seconds=LEASE)
    assert (theirs.id, theirs.attempts) == (mine.id, 2)
    assert theirs.claim_token != mine.claim_token

    # While the second send is in flight, the first one's late outcome changes nothing.
    assert await first.done(mine) is False
    assert await first.failed(mine, "late timeout", None) is False
    assert await first.failed(mine, "late timeout", clock.now) is False  # would free the row
    stored = row(stores[0])
    assert (stored.status, stored.claim_token) == ("pending", theirs.claim_token)
    assert stored.locked_until == clock.now + timedelta(seconds=LEASE)

    assert await second.done(theirs) is True
    assert await first.done(mine) is False  # nor once the second claim is recorded

    stored = row(stores[0])
    assert (stored.status, stored.attempts, stored.last_error) == ("done", 2, None)
    assert stored.done_at == clock.now and stored.claim_token is None


async def test_a_send_that_outlives_its_lease_is_recorded_once_by_the_dispatcher(
    stores: tuple[Store, Store], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    [key] = queue(stores[0], clock)
    late = RecordingSender("a", gate=asyncio.Event())
    current = RecordingSender("b", gate=asyncio.Event())
    first = asyncio.create_task(dispatcher(stores[0], clock, late).run_once())
    await late.started.wait()
    clock.advance(seconds=LEASE + 1)  # the first send hangs past its lease
    second = asyncio.create_task(dispatcher(stores[1], clock, current).run_once())
    await current.started.wait()  # the row came back and is being sent again

    assert late.gate is not None and current.gate is not None
    late.gate.set()  # the first send finally returns "delivered"
    with caplog.at_level(logging.WARNING, logger="gateway.dispatcher"):
        await first
    assert "not recorded" in caplog.text
    assert row(stores[0]).status == "pending"  # still the second dispatcher's

    clock.advance(seconds=5)
    current.gate.set()
    await second
    stored = row(stores[0])
    assert (stored.status, stored.attempts, stored.done_at) == ("done", 2, clock.now)
    # Both attempts carried the row's key: a receiver that saw it can drop the repeat.
    assert late.attempts == current.attempts == [("SD-0", key)]


async def test_a_killed_workers_row_is_rescued_after_its_lease(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock)
    hanging = RecordingSender("a", gate=asyncio.Event())
    survivor = RecordingSender("b")
    killed = asyncio.create_task(dispatcher(stores[0], clock, hanging).run_once())
    await hanging.started.wait()
    killed.cancel()  # the worker dies mid-send: nothing is recorded
    with pytest.raises(asyncio.CancelledError):
        await killed
    rescuer = dispatcher(stores[1], clock, survivor)

    clock.advance(seconds=LEASE - 1)
    assert await rescuer.run_once() == 0  # still leased to the dead worker
    clock.advance(seconds=2)
    assert await rescuer.run_once() == 1

    assert len(survivor.delivered) == 1
    assert (row(stores[0]).status, row(stores[0]).attempts) == ("done", 2)


# ---- retries --------------------------------------------------------------------------------
async def test_a_relay_down_for_hours_does_not_lose_the_reply(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    # Issue 7: the reply was dead after 8 attempts (about two minutes).
    queue(stores[0], clock)
    sender = RecordingSender(fail_always=DeliveryError("connection refused", permanent=False))
    dispatch = dispatcher(stores[0], clock, sender)
    started = clock.now

    await drain(dispatch, clock, stores[0], rounds=30)
    assert row(stores[0]).status == "pending"
    assert clock.now - started > timedelta(hours=3)

    sender.fail_always = None  # the relay is back
    await drain(dispatch, clock, stores[0], rounds=1)
    assert (row(stores[0]).status, row(stores[0]).attempts) == ("done", 31)
    assert len(sender.delivered) == 1


async def test_a_temporary_failure_is_dead_once_its_lifetime_is_over(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock)
    sender = RecordingSender(fail_always=DeliveryError("451 try later", permanent=False))
    dispatch = dispatcher(stores[0], clock, sender, lifetime_seconds=3600.0)
    started = clock.now

    await drain(dispatch, clock, stores[0], rounds=100)

    stored = row(stores[0])
    assert stored.status == "dead" and stored.last_error == "451 try later"
    assert stored.done_at == started + timedelta(hours=1)  # the last try was at the end
    assert len(sender.attempts) == stored.attempts < 100


async def test_a_permanent_failure_is_dead_after_the_configured_attempts(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock)
    sender = RecordingSender(fail_always=DeliveryError("550 no such user", permanent=True))
    dispatch = dispatcher(stores[0], clock, sender, permanent_max_attempts=3)

    await drain(dispatch, clock, stores[0], rounds=10)

    stored = row(stores[0])
    assert (stored.status, stored.attempts, stored.last_error) == ("dead", 3, "550 no such user")


async def test_retry_after_from_the_receiver_sets_the_next_attempt(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock)
    busy = DeliveryError("429 slow down", permanent=False, retry_after=600.0)
    dispatch = dispatcher(stores[0], clock, RecordingSender(failures=[busy]))

    await dispatch.run_once()

    assert row(stores[0]).next_attempt_at == clock.now + timedelta(seconds=600)


async def test_every_attempt_carries_the_rows_idempotency_key(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    [key] = queue(stores[0], clock)
    down = DeliveryError("refused", permanent=False)
    sender = RecordingSender(failures=[down, down])

    await drain(dispatcher(stores[0], clock, sender), clock, stores[0], rounds=5)

    assert sender.attempts == [("SD-0", key)] * 3
    assert row(stores[0]).idempotency_key == key


async def test_each_failure_is_logged_at_warning_with_its_target(
    stores: tuple[Store, Store], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    queue(stores[0], clock)
    sender = RecordingSender(failures=[DeliveryError("relay unreachable", permanent=False)])
    with caplog.at_level(logging.WARNING, logger="gateway.dispatcher"):
        await dispatcher(stores[0], clock, sender).run_once()
    [record] = [r for r in caplog.records if r.name == "gateway.dispatcher"]
    assert record.levelno == logging.WARNING
    assert "user0@example.org" in record.getMessage()
    assert "relay unreachable" in record.getMessage()


async def test_a_send_that_hangs_is_cut_off_within_its_lease(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock)
    sender = RecordingSender(gate=asyncio.Event())  # never opened
    dispatch = dispatcher(stores[0], clock, sender, lease_seconds=0.2)

    await dispatch.run_once()  # returns: the send was cancelled before the lease ran out

    stored = row(stores[0])
    assert stored.status == "pending" and "within" in stored.last_error
    assert stored.claim_token is None  # released, to be retried after its backoff


async def test_a_kind_without_a_transport_is_dead_after_the_permanent_attempts(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    queue(stores[0], clock, kind="fax.reply")
    dispatch = dispatcher(stores[0], clock, RecordingSender(), permanent_max_attempts=2)

    await drain(dispatch, clock, stores[0], rounds=5)

    stored = row(stores[0])
    assert (stored.status, stored.attempts) == ("dead", 2)
    assert stored.last_error == "no transport for fax.reply"
