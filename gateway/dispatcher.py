"""The outbox dispatcher: takes due rows from the router's outbox and hands each to the
outbound transport for its kind, outside any routing transaction.

A row is retried with exponential backoff (1 s, 2 s, 4 s … capped at 15 min) on a temporary
failure and marked dead on a permanent one or after ``max_attempts``. A claimed row carries a
lease, so a row whose dispatcher died is taken again once the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from channels.outbound import DeliveryError
from gateway.metrics import Metrics
from normalizer.intake import IntakeError
from router.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

Sender = Callable[[Mapping[str, Any]], Awaitable[object]]
MAX_BACKOFF_SECONDS = 900.0


def backoff_seconds(attempt: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(0, attempt - 1)))


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[str, Sender],
        metrics: Metrics,
        *,
        max_attempts: int = 8,
        poll_interval_seconds: float = 1.0,
        batch_size: int = 20,
    ) -> None:
        self._outbox = outbox
        self._senders = dict(senders)  # by kind prefix: "email" serves email.ack, email.reply
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._interval = poll_interval_seconds
        self._batch = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

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

    async def _run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.run_once()
            except IntakeError as exc:  # database unavailable: try again later
                log.warning("outbox: cannot read the outbox: %s", exc)
                sent = 0
            except Exception:  # a bad row or a bug must not end the dispatcher for good
                log.exception("outbox: dispatching failed; trying again shortly")
                sent = 0
            if sent < self._batch:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._wake.wait()
                self._wake.clear()

    async def run_once(self) -> int:
        """Claim and deliver one batch; returns how many rows were claimed."""
        items = await self._outbox.claim(limit=self._batch)
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        sender = self._senders.get(item.kind.split(".", 1)[0])
        if sender is None:
            log.error("outbox %d: no transport for kind %s", item.id, item.kind)
            await self._outbox.failed(item.id, f"no transport for {item.kind}", None)
            self._metrics.delivery_failed(item.kind)
            return
        try:
            await sender(item.payload)
        except DeliveryError as exc:
            await self._failure(item, str(exc), permanent=exc.permanent)
        except Exception as exc:  # a transport bug must not stop the dispatcher
            log.exception("outbox %d: unexpected error from the %s transport", item.id, item.kind)
            await self._failure(item, f"{type(exc).__name__}: {exc}", permanent=False)
        else:
            await self._outbox.done(item.id)
            log.info("outbox %d: %s delivered (attempt %d)", item.id, item.kind, item.attempts)

    async def _failure(self, item: OutboxItem, error: str, *, permanent: bool) -> None:
        self._metrics.delivery_failed(item.kind)
        if permanent or item.attempts >= self._max_attempts:
            log.warning(
                "outbox %d: %s dead after %d attempts: %s", item.id, item.kind, item.attempts, error
            )
            await self._outbox.failed(item.id, error, None)
        else:
            delay = backoff_seconds(item.attempts)
            log.info(
                "outbox %d: %s failed (attempt %d), retry in %.0fs: %s",
                item.id,
                item.kind,
                item.attempts,
                delay,
                error,
            )
            await self._outbox.failed(item.id, error, delay)
