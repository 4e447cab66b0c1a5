"""The one shape every inbound transport has: start, then stop gracefully.

The gateway owns the event loop and the start/stop order; a channel only knows how to open its
listener (or poller) in the running loop and how to drain it. Configuration comes in through
the concrete channel's constructor, never from here.
"""

from __future__ import annotations

import abc


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
