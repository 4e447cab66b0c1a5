"""The outbox dispatcher: takes due rows from the router's outbox and hands each to the
outbound transport for its kind, outside any routing transaction.

What it does
    Claims a batch of due rows with a lease (``lease_seconds``), sends them concurrently, and
    records each outcome under the claim's token (``router.outbox``): a row whose lease ran out
    while its send hung is claimed by another dispatcher, and the first one's late result is
    refused rather than recorded twice. Each send is cut off shortly before its lease ends, so
    in a process that keeps running a send does not outlive its claim. Several dispatchers (in
    several ``spoc serve`` processes on one PostgreSQL) share the work.

Retries (``router.retry``)
    Temporary failures retry with capped exponential backoff and jitter, or after the
    receiver's ``Retry-After``, until the row's lifetime (default 5 days) is over; permanent
    ones are dead after ``permanent_max_attempts``. Every failure is logged at WARNING with the
    row, its kind, its target and the error.

Stopping
    ``stop`` cancels the sends in flight (their rows' leases bring them back), then awaits each
    transport's ``closers`` entry, e.g. :meth:`channels.outbound.email.EmailSender.close`, which
    sends QUIT on the relay sessions kept open.

Idempotency key
    Every transport gets the row's ``idempotency_key`` with the payload, the same on every
    retry of the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.outbound import DeliveryError
from gateway.metrics import Metrics
from normalizer.intake import IntakeError
from router.clock import Clock, utcnow
from router.outbox import Outbox, OutboxItem
from router.retry import GiveUp, RetryPolicy, next_attempt

log = logging.getLogger(__name__)

LEASE_MARGIN = 0.9  # a send may use this share of its lease; the rest is for recording it


class Sender(Protocol):
    """One outbound transport's ``send``: returns when delivered, else raises DeliveryError."""

    async def __call__(self, payload: Mapping[str, Any], *, idempotency_key: str) -> object: ...


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll_interval_seconds: float = 1.0
    batch_size: int = 20
    lease_seconds: float = 120.0

    @property
    def send_timeout_seconds(self) -> float:
        return self.lease_seconds * LEASE_MARGIN


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[str, Sender],
        metrics: Metrics,
        settings: DispatcherSettings | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._outbox = outbox
        self._senders = dict(senders)  # by kind prefix: "email" serves email.ack, email.reply
        self._metrics = metrics
        self._settings = settings or DispatcherSettings()
        self._now = clock or utcnow
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closers = tuple(closers)  # transports' close(): QUIT kept sessions, etc.

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="spoc-outbox-dispatcher")

    def wake(self) -> None:
        """Look for due rows now (e.g. right after a contact queued an ack)."""
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        # Cancel until it is really done: on Python 3.11 a cancel that lands while a
        # wait_for/timeout is finishing can be swallowed (CPython gh-86296).
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        for close in self._closers:
            try:
                await close()
            except Exception:  # one transport's failure must not keep the others open
                log.exception("outbox: closing a transport failed")

    async def _run(self) -> None:
        settings = self._settings
        while not self._stopping:
            try:
                sent = await self.run_once()
            except IntakeError as exc:  # database unavailable: try again later
                log.warning("outbox: cannot read the outbox: %s", exc)
                sent = 0
            except Exception:  # a bad row or a bug must not end the dispatcher for good
                log.exception("outbox: dispatching failed; trying again shortly")
                sent = 0
            if sent < settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.poll_interval_seconds):
                        await self._wake.wait()
                self._wake.clear()

    async def run_once(self) -> int:
        """Claim and deliver one batch; returns how many rows were claimed."""
        settings = self._settings
        items = await self._outbox.claim(
            limit=settings.batch_size, lease_seconds=settings.lease_seconds
        )
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        sender = self._senders.get(item.kind.split(".", 1)[0])
        if sender is None:
            await self._failure(
                item, DeliveryError(f"no transport for {item.kind}", permanent=True)
            )
            return
        limit = self._settings.send_timeout_seconds
        try:
            async with asyncio.timeout(limit) as scope:
                await sender(item.payload, idempotency_key=item.idempotency_key)
        except DeliveryError as exc:
            await self._failure(item, exc)
        except TimeoutError as exc:
            error = f"the send did not finish within {limit:g}s (its lease)"
            if not scope.expired():
                error = f"TimeoutError: {exc}"
            await self._failure(item, DeliveryError(error, permanent=False))
        except Exception as exc:  # a transport bug must not stop the dispatcher
            log.exception("outbox %d: unexpected error from the %s transport", item.id, item.kind)
            await self._failure(
                item, DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False)
            )
        else:
            if await self._outbox.done(item):
                log.info("outbox %d: %s delivered (attempt %d)", item.id, item.kind, item.attempts)
            else:
                self._lost_claim(item, "delivered")

    async def _failure(self, item: OutboxItem, exc: DeliveryError) -> None:
        self._metrics.delivery_failed(item.kind)
        now = self._now()
        decision = next_attempt(
            self._settings.retry,
            attempts=item.attempts,
            permanent=exc.permanent,
            retry_after_seconds=exc.retry_after,
            queued_at=item.queued_at,
            now=now,
            rng=self._rng,
        )
        error = str(exc)
        if isinstance(decision, GiveUp):
            recorded = await self._outbox.failed(item, error, None)
            outcome = f"dead: {decision.reason}"
        else:
            recorded = await self._outbox.failed(item, error, decision.at)
            outcome = f"retry in {decision.delay_seconds:.0f}s"
        if not recorded:
            self._lost_claim(item, "failed")
            return
        log.warning(
            "outbox %d: %s to %s failed (attempt %d), %s: %s",
            item.id,
            item.kind,
            item.target,
            item.attempts,
            outcome,
            error,
        )

    def _lost_claim(self, item: OutboxItem, outcome: str) -> None:
        log.warning(
            "outbox %d: %s to %s %s after its lease ran out; another dispatcher holds the row, "
            "so this outcome is not recorded",
            item.id,
            item.kind,
            item.target,
            outcome,
        )
