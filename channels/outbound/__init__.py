"""Outbound transports: deliver what the router's outbox holds (acks, replies, forwards).

The gateway's dispatcher claims outbox rows and hands each payload to the transport for its
kind; a transport either returns (delivered) or raises :class:`DeliveryError`, saying whether a
retry could help. Nothing here is called from inside a router transaction.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A payload could not be delivered.

    ``permanent`` is true when retrying the same payload cannot succeed (the receiving server
    said 5xx, the payload is malformed): the dispatcher marks the row dead instead of backing
    off. Everything else (4xx, refused or dropped connections, timeouts) is temporary.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


__all__ = ["DeliveryError"]
