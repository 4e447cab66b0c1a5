"""The one shape every inbound transport has: start, then stop gracefully.

The gateway owns the event loop and the start/stop order; a channel only knows how to open its
listener (or poller) in the running loop and how to drain it. Configuration comes in through
the concrete channel's constructor, never from here.
"""

from __future__ import annotations

import abc

from aiohttp import web


class Channel(abc.ABC):
    """An inbound transport the gateway starts and stops.

    ``start`` returns once the channel is accepting (a listener is bound, a poller scheduled).
    ``stop`` stops accepting at once, lets in-flight contacts finish for up to
    ``grace_seconds`` and then closes whatever is left. Both are safe to call once each, in that
    order; ``stop`` without ``start`` does nothing.
    """

    name: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin accepting contacts in the running event loop."""

    @abc.abstractmethod
    async def stop(self, grace_seconds: float) -> None:
        """Stop accepting, finish in-flight contacts (up to ``grace_seconds``), close."""


class WebhookChannel(Channel):
    """A channel that is called over the gateway's HTTP app (Twilio, Slack Events API).

    It adds its routes to the app the gateway builds (before the app starts); ``start`` and
    ``stop`` manage whatever else it runs (a Socket Mode connection, a spool replayer).
    """

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register this channel's handlers on the gateway's application."""

    async def start(self) -> None:
        """Nothing to start beyond the routes, unless a channel says otherwise."""

    async def stop(self, grace_seconds: float) -> None:
        """Nothing to drain beyond the HTTP app, unless a channel says otherwise."""
