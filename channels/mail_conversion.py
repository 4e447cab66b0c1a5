"""Converting big mail in a separate process, so the event loop keeps its GIL.

Sanitising and converting a 250 KB HTML body (nh3 plus the HTML-to-text walk) takes 40-70 ms
here. On a worker *thread* that still stalls the event loop: the thread holds the GIL for long
stretches, and the loop waits up to the switch interval (5 ms, more under load) at every
hand-over (docs/benchmarks.md, loop lag). :class:`ConversionPool` runs
``normalizer.email.contact_from_email`` -- a pure function of the bytes and plain arguments --
in a small :class:`~concurrent.futures.ProcessPoolExecutor` instead.

Only the conversion crosses the process boundary: the raw bytes go over, the Contact comes back
without them (the caller puts its own ``raw`` back, so a message is not copied back). The
pool is created in :meth:`ConversionPool.start`, i.e. inside each ``spoc serve --workers N``
worker after the fork, with the ``spawn`` start method (forking a process that runs threads is
unsafe); its processes ignore SIGINT and SIGTERM, so a stopping gateway finishes the
conversions in flight and then shuts the pool down, and end by themselves if the gateway is
killed. If the pool breaks (a process killed, a
result that cannot be sent back), the message -- and every later one -- is converted on a
thread instead, as before; that is logged once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from normalizer.contact import Contact
from normalizer.email import contact_from_email

log = logging.getLogger(__name__)


def _serve_the_parent_only() -> None:
    """In each pool process: the parent decides when to stop (it shuts the pool down), and if
    the parent dies without doing so (``kill -9``, OOM) the process ends at once. A pool
    process would otherwise wait forever: it holds both ends of its task queue's pipe itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel
        threading.Thread(
            target=lambda: (multiprocessing.connection.wait([sentinel]), os._exit(0)),
            name="parent-watch",
            daemon=True,
        ).start()


def _convert_without_raw(raw: bytes, kwargs: dict[str, Any]) -> tuple[Contact, bool]:
    """In a pool process: the contact, without its raw bytes if they are the message's own."""
    contact = contact_from_email(raw, **kwargs)
    if contact.raw == raw:
        return replace(contact, raw=b""), True
    return contact, False


class ConversionPool:
    """``contact_from_email`` in ``processes`` worker processes; on a thread if they fail."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"a conversion pool needs at least 1 process, got {processes!r}")
        self.processes = processes
        self.converted_in_process = 0  # messages converted by the pool so far
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._broken = False

    def start(self) -> None:
        if self._pool is not None:
            raise RuntimeError("conversion pool already started")
        self._broken = False
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_serve_the_parent_only,
        )

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def convert(self, raw: bytes, **kwargs: Any) -> Contact:
        """``contact_from_email(raw, **kwargs)``, off the event loop's thread and process."""
        pool = self._pool
        if pool is not None and not self._broken:
            try:
                future = pool.submit(_convert_without_raw, raw, kwargs)
                contact, stripped = await asyncio.wrap_future(future)
            except BrokenProcessPool as exc:
                self._broken = True
                log.error("mail conversion pool broken (%s): converting on a thread from now", exc)
            else:
                self.converted_in_process += 1
                return replace(contact, raw=raw) if stripped else contact
        return await asyncio.to_thread(contact_from_email, raw, **kwargs)
