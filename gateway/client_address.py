"""The client's address behind a reverse proxy (``[server] trusted_proxies``).

Behind a proxy every request comes from the proxy's address. When the TCP peer is one of the
configured ``trusted_proxies`` (addresses or CIDR blocks), the client is read from
``X-Forwarded-For``: walking it from the right, the first address that is not itself a trusted
proxy. Everything left of that address was written by the client and is never believed (a
client can send ``X-Forwarded-For: 1.2.3.4`` of its own; the proxy appends the real peer after
it). From a peer that is not a trusted proxy the header is ignored, and so it is with the
default, an empty list. An entry a trusted proxy passed on that is no address (``unknown``, an
obfuscated name) ends the walk: the last trusted hop stands for the client.

:func:`forwarded_client` is the root application's middleware right after the route timing
(``gateway.http_metrics``), so the login lockout, the web form's limits and every handler see the
client as ``request.remote``;
:class:`ClientAccessLogger` writes the same address into the access log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from channels.networks import IPNetwork, in_networks, ip_address

__all__ = ["CLIENT_ADDRESS", "ClientAccessLogger", "client_address", "forwarded_client"]

# The forwarded client, on the request aiohttp logs (the handlers get a clone carrying it).
CLIENT_ADDRESS: Final = web.RequestKey("client_address", str)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy; then the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy (``forwarded_for``: the header's
    values, in order; several headers count as one comma-separated list)."""
    if peer is None or not in_networks(ip_address(peer), trusted):
        return peer
    client = peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = ip_address(hop)
        if address is None:
            break
        client = str(address)
        if not in_networks(address, trusted):
            break
    return client


def forwarded_client(trusted: Sequence[IPNetwork]) -> Middleware:
    """A middleware handing on a request whose ``remote`` is :func:`client_address`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote
        client = client_address(peer, request.headers.getall(hdrs.X_FORWARDED_FOR, ()), trusted)
        if client is None or client == peer:
            return await handler(request)
        request[CLIENT_ADDRESS] = client
        return await handler(request.clone(remote=client))

    return middleware


class ClientAccessLogger(AccessLogger):
    """aiohttp's access log, naming the forwarded client (``%a``) instead of the proxy."""

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> list[tuple[str | tuple[str, str], str]]:
        line = list(super()._format_line(request, response, time))
        client = request.get(CLIENT_ADDRESS)
        if client is None:
            return line
        return [(key, client if key == "remote_address" else value) for key, value in line]
