"""Time every HTTP request by its route template, for ``spoc_http_request_seconds``.

:func:`route_timing` is the root application's outermost middleware, so it sees the answer the
client gets (the JSON error middleware's included) and covers the sub-application under
``/api`` and the channels' webhooks alike. The label is the matched route's template
(``/api/tickets/{ref}``), never the raw path, so a scan of random URLs adds one series
(``unmatched``), not one per URL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.metrics import Metrics

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
