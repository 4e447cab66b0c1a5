"""One budget of request-body bytes in flight for the whole HTTP server (``[server]
max_inflight_body_bytes``), charged by a middleware before any handler reads a body.

aiohttp caps each request (``client_max_size``, :data:`CLIENT_MAX_SIZE`: 413 beyond it; the web
form's multipart reader keeps its own limits), but N requests at once may hold N times that.
Each route that reads a body declares the largest it takes where it is registered
(``channels.http_bodies``: :data:`CLIENT_MAX_SIZE` unless it says otherwise; the web form takes
its files and text). A body declared larger than its route takes is answered ``413`` at once,
reserving nothing (as JSON, or the route's own page: the web form's). Every other request with
a body reserves, before its handler runs, what its body can hold:

- its ``Content-Length`` (aiohttp reads no more than that);
- with no ``Content-Length`` (``Transfer-Encoding: chunked``), or with a ``Content-Encoding``
  (the body inflates as it is read), the per-request limit, :data:`CLIENT_MAX_SIZE`: the
  pessimistic size;
- nothing for ``GET``/``HEAD``, for bodies of 0 bytes and for paths no route serves (404/405:
  no handler reads the body).

What does not fit now is answered at once with ``503``, ``Retry-After`` and the API's JSON
error, before its body is read; a body that could never fit (bigger than the budget less the
:data:`SMALL_BODY_HEADROOM` it must leave free, below) is answered ``413``. The reservation is
given back when the handler ends, however it ends: response, error, or a client that hung up
mid-body (its read fails and the handler ends). A client that sent ``Expect: 100-continue``
gets its ``100 Continue`` only once its body has its reservation; refused, it gets the 413 or 503
without sending the body, with ``Connection: close``: whatever the client sends next on that
connection is taken for the body (discarded), never for another request. A body must arrive
whole within ``[server] body_timeout_seconds`` of its reservation: a client that stalls or
vanished without closing is cut off then, so it cannot keep its share for ever.

Small bodies are not starved by big ones: a body over :data:`SMALL_BODY_BYTES` must leave
:data:`SMALL_BODY_HEADROOM` of the budget free, so Twilio's and Slack's webhooks (a few KiB;
Twilio does not retry a 5xx) still get in while big uploads fill the rest.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from channels.http_bodies import (
    DEFAULT_MAX_BODY_BYTES,
    body_route,
    continue_deferred,
    send_continue,
)
from channels.inflight_budget import InflightBudget
from gateway.api import RETRY_AFTER_SECONDS, error_response

log = logging.getLogger(__name__)

CLIENT_MAX_SIZE: Final = DEFAULT_MAX_BODY_BYTES  # bytes; bigger bodies get 413
SMALL_BODY_BYTES: Final = 64 * 1024  # a webhook's form or JSON; bigger is an upload
SMALL_BODY_HEADROOM: Final = 1024 * 1024  # kept free of big bodies, for small ones
# Four of the largest bodies the server takes (a web-form report: 10 MiB of files, 1 MiB of
# description and the rest, about 12 MiB, rounded up to 16), as [smtp] max_inflight_bytes is
# four of the largest messages.
DEFAULT_MAX_INFLIGHT_BODY_BYTES: Final = 64 * 1024 * 1024
DEFAULT_BODY_TIMEOUT_SECONDS: Final = 120.0  # 10 MiB at about 0.7 Mbit/s
# The smallest budget a body of the per-request limit fits in, beside the small bodies' room.
MIN_INFLIGHT_BODY_BYTES: Final = CLIENT_MAX_SIZE + SMALL_BODY_HEADROOM
_NO_BODY: Final = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})

BODY_BUDGET_KEY: Final = web.AppKey("body_budget", InflightBudget)


def reserved_size(request: web.Request) -> int:
    """The bytes ``request``'s body may hold once read: what it reserves of the budget."""
    if request.method in _NO_BODY or not request.body_exists:
        return 0
    if request.match_info.http_exception is not None:  # 404/405: no handler reads the body
        return 0
    declared = request.content_length
    if declared is None or hdrs.CONTENT_ENCODING in request.headers:
        return max(declared or 0, CLIENT_MAX_SIZE)
    return declared


def headroom(size: int) -> int:
    """How much of the budget a body of ``size`` bytes must leave free for small bodies."""
    return 0 if size <= SMALL_BODY_BYTES else SMALL_BODY_HEADROOM


def body_budget(
    budget: InflightBudget, timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
) -> Middleware:
    """The middleware charging every request's body to ``budget`` while its handler runs; a
    body not received whole within ``timeout_seconds`` has its connection closed."""

    @web.middleware
    async def charge_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        size = reserved_size(request)
        if not size:  # an empty body: nothing to wait for, if the client asked
            await send_continue(request)
            return await handler(request)
        declared, route = request.content_length, body_route(request)
        if declared is not None and declared > route.max_body_bytes:
            if route.too_large is not None:  # the route's own page (the web form's)
                return _refused(request, route.too_large(request))
            return _refused(
                request,
                error_response(
                    413, f"the body ({declared} bytes) is larger than {route.max_body_bytes} bytes"
                ),
            )
        keep = headroom(size)
        if size > budget.limit - keep:
            return _refused(
                request,
                error_response(
                    413, f"the body ({size} bytes) is larger than this server takes at once"
                ),
            )
        if not budget.reserve(size, keep=keep):
            budget.refused += 1
            log.warning(
                "HTTP %s %s: body budget spent (%d of %d bytes in flight, %d asked), answered 503",
                request.method,
                request.path,
                budget.used,
                budget.limit,
                size,
            )
            return _refused(
                request,
                error_response(
                    503,
                    "the server is receiving too many request bodies at once; "
                    "retry after Retry-After seconds",
                    headers={"Retry-After": RETRY_AFTER_SECONDS},
                ),
            )
        deadline = asyncio.get_running_loop().call_later(
            timeout_seconds, _cut_off, request, timeout_seconds
        )
        try:
            await send_continue(request)
            return await handler(request)
        finally:
            deadline.cancel()
            budget.release(size)

    return charge_body


def _refused(request: web.Request, response: web.Response) -> web.Response:
    """``response``, refusing a body; with ``Connection: close`` if the client still waits for
    ``100 Continue``: its body may or may not follow, so nothing after it is a request."""
    if continue_deferred(request):
        response.force_close()
    return response


def _cut_off(request: web.Request, timeout_seconds: float) -> None:
    """Close the connection of a request whose body has not all arrived in time; its read then
    fails, its handler ends and its reservation is given back."""
    if request.content.is_eof():  # received whole: the handler is busy with it, not the client
        return
    log.warning(
        "HTTP %s %s: body not received within %g s, connection closed",
        request.method,
        request.path,
        timeout_seconds,
    )
    if request.transport is not None:
        request.transport.close()
