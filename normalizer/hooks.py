"""What a forward target's tool tells us about a ticket, read from its webhook: one
:class:`HookEvent` per change. Channels read them (``channels/outbound/<kind>.py``
``read_hook``); the router applies them (``router.forward_hooks``)."""

from __future__ import annotations

from dataclasses import dataclass

HOOK_TYPES = ("comment.public", "comment.internal", "ticket.resolved")


class HookRefused(Exception):
    """The hook is not signed by the target's secret (HTTP 401, nothing stored)."""


class HookMalformed(ValueError):
    """The hook is signed but not a shape we read (HTTP 400 naming ``field``)."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class HookEvent:
    delivery_key: str  # the tool's delivery id, or what identifies this change
    type: str  # one of HOOK_TYPES
    text: str = ""
    author: str = ""
    ref: str | None = None  # our ref, when the tool sends it
    external_key: str | None = None  # else the tool's key for the ticket
    also_seen: tuple[str, ...] = ()  # more keys of the same change (a comment's id)
