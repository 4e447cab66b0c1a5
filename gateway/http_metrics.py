"""Time every HTTP request by its route template, for ``spoc_http_request_seconds``; answer a
scrape of ``/metrics`` (:class:`MetricsScrape`).

:func:`route_timing` is the root application's outermost middleware, so it sees the answer the
client gets (the JSON error middleware's included) and covers the sub-application under
``/api`` and the channels' webhooks alike. The label is the matched route's template
(``/api/tickets/{ref}``), never the raw path, so a scan of random URLs adds one series
(``unmatched``), not one per URL.

A scrape renders the text exposition in a thread, not on the event loop: with four workers'
multiprocess files that takes about 20 ms of CPU, which would otherwise hold up every other
channel's I/O in the meantime. One render (and one database read) at a time, whatever the
number of scrapers: those that arrive while one is under way share the next one, started when it
ends. Not the one under way: it may have read its values before they asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.metrics import Metrics
from router.clock import utcnow
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore
from router.store import Store

log = logging.getLogger(__name__)

UNMATCHED: Final = "unmatched"


def route_template(request: web.Request) -> str:
    """The template of the route that served ``request``, or ``unmatched`` (404, 405)."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    return resource.canonical


def route_timing(metrics: Metrics) -> Middleware:
    """A middleware observing each request's latency and status in ``metrics``."""

    @web.middleware
    async def time_route(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:  # the client went away: no answer to count
            status = 0
            raise
        finally:
            if status:
                seconds = time.perf_counter() - started
                metrics.observe_http(request.method, route_template(request), status, seconds)

    return time_route


async def refresh_gauges(
    metrics: Metrics, outbox: OutboxAdmin, quarantine: QuarantineStore
) -> None:
    """Read the outbox and quarantine numbers into ``metrics``; a scrape still answers with
    what it knows when the database does not (logged)."""
    try:
        stats = await outbox.stats()
        sizes = await quarantine.sizes()
    except Exception as exc:
        log.warning("metrics: outbox or quarantine state unavailable: %s", exc)
        return
    oldest = stats.oldest_pending_at
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    metrics.set_outbox_state(stats.pending, stats.dead, age)
    metrics.set_quarantine_sizes(sizes)


class MetricsScrape:
    """What ``GET /metrics`` answers: the database gauges read afresh, then the text rendered in
    a worker thread. One render at a time: scrapes that come while one is under way share the
    next, which starts when it ends (what is under way may have read its values before they
    came, so they do not take its text)."""

    def __init__(self, metrics: Metrics, outbox: OutboxAdmin, store: Store) -> None:
        self._metrics = metrics
        self._outbox = outbox
        self._quarantine = QuarantineStore(store)
        self._running: asyncio.Task[tuple[bytes, str]] | None = None  # reading or rendering
        self._next: asyncio.Task[tuple[bytes, str]] | None = None  # not yet started

    async def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type, as of a moment during this call."""
        task = self._next
        if task is None or task.done():  # done: cancelled before it started (a shutdown)
            task = self._next = asyncio.create_task(self._render(self._running))
        # One scraper hanging up must not cancel the render the others wait for.
        return await asyncio.shield(task)

    async def _render(self, before: asyncio.Task[tuple[bytes, str]] | None) -> tuple[bytes, str]:
        if before is not None:
            await asyncio.wait([before])
        this = asyncio.current_task()
        self._next, self._running = None, this  # scrapes from now on wait for the next one
        try:
            await refresh_gauges(self._metrics, self._outbox, self._quarantine)
            return await asyncio.to_thread(self._metrics.render)
        finally:
            if self._running is this:
                self._running = None
