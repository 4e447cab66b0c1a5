"""Request bodies on the gateway's HTTP server: each route that reads one says, where it is
registered, the largest body it takes.

The gateway charges every body to one budget of bytes in flight before the handler runs
(``gateway.http_budget``). It reserves what the body declares, so it needs to know what the
route would read: a body declared larger than that is refused (413) at once instead of holding
its declared size until the read fails. A route registered through :func:`add_body_route` is
known to the budget: its limit is :data:`DEFAULT_MAX_BODY_BYTES` (aiohttp's ``client_max_size``
for the whole app) unless it names another (the web form takes its files, ``[webform]
max_attachment_bytes``, and its text).

A body declared larger than its route takes gets the API's JSON ``413``, unless the route gives
its own answer (``too_large``): the web form answers with its HTML page, as it does for files
over its limit, so a browser shows the form with the reason instead of raw JSON.

``Expect: 100-continue``: aiohttp answers ``100 Continue`` before any middleware runs, so the
client would send its body even when the budget then refuses it. A route registered here holds
that answer back (:func:`defer_continue`); the budget sends it (:func:`send_continue`) once the
body has its reservation, else it answers 413/503 and the client never sends the body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.typedefs import Handler

DEFAULT_MAX_BODY_BYTES: Final = 2 * 1024 * 1024  # aiohttp's client_max_size: 413 beyond it

TooLarge = Callable[[web.Request], web.Response]
"""A route's own ``413`` answer to a body declared larger than it takes (read nothing of it)."""


@dataclass(frozen=True, slots=True)
class BodyRoute:
    """What a route that reads a body told :func:`add_body_route`."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    too_large: TooLarge | None = None  # None: the gateway's JSON 413


BODY_ROUTES_KEY: Final = web.AppKey("body_routes", dict[web.AbstractRoute, BodyRoute])
_DEFAULT_ROUTE: Final = BodyRoute()
_CONTINUE_DEFERRED: Final = web.RequestKey("continue_deferred", bool)
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def add_body_route(
    app: web.Application,
    path: str,
    handler: Handler,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    too_large: TooLarge | None = None,
    method: str = hdrs.METH_POST,
) -> web.AbstractRoute:
    """Register ``handler`` for ``method path``, a route reading a body of at most
    ``max_body_bytes``, whose ``100 Continue`` the body budget sends; ``too_large`` answers a
    body declared larger (default: the gateway's JSON 413)."""
    route = app.router.add_route(method, path, handler, expect_handler=defer_continue)
    app.setdefault(BODY_ROUTES_KEY, {})[route] = BodyRoute(max_body_bytes, too_large)
    return route


def body_route(request: web.Request) -> BodyRoute:
    """What the route matched by ``request`` takes (the defaults for any other route)."""
    routes = request.config_dict.get(BODY_ROUTES_KEY, {})
    return routes.get(request.match_info.route, _DEFAULT_ROUTE)


async def defer_continue(request: web.Request) -> None:
    """The routes' ``expect_handler``: like aiohttp's own, but the ``100 Continue`` waits for
    :func:`send_continue`."""
    if request.version != HttpVersion11:
        return
    expect = request.headers.get(hdrs.EXPECT, "")
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
    request[_CONTINUE_DEFERRED] = True


def continue_deferred(request: web.Request) -> bool:
    """Whether the client waits for a ``100 Continue`` nobody has sent yet."""
    return _CONTINUE_DEFERRED in request


async def send_continue(request: web.Request) -> None:
    """Tell a client that waits for it to send its body (once; nothing if it does not wait)."""
    if request.pop(_CONTINUE_DEFERRED, False):
        await request.writer.write(_CONTINUE)
        request.writer.output_size = 0  # the response proper has not started (as aiohttp does)
