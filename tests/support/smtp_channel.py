"""Real ``SMTPChannel`` instances for the tests that talk SMTP to the channel alone (no router):
on 127.0.0.1 port 0, for the contract's desk address and aliases, stopped on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from channels.smtp import SMTPChannel, SMTPChannelSettings
from normalizer.intake import Intake, Quarantine

DESK = "servicedesk@example.com"
ALIASES = ("helpdesk@example.com", "cs@example.com")

StartChannel = Callable[..., Awaitable[SMTPChannel]]


@asynccontextmanager
async def channel_starter(intake: Intake, **defaults: Any) -> AsyncIterator[StartChannel]:
    """A ``start(**overrides)`` that starts a channel handing contacts to ``intake``; every
    channel it started is stopped when the block ends. ``defaults``, then each start's
    ``overrides``, replace ``SMTPChannelSettings`` fields (spoc's own defaults otherwise);
    ``quarantine=`` gives the channel a quarantine."""
    started: list[SMTPChannel] = []

    async def start(quarantine: Quarantine | None = None, **overrides: Any) -> SMTPChannel:
        values: dict[str, Any] = {
            "desk_address": DESK,
            "aliases": ALIASES,
            "host": "127.0.0.1",
            "port": 0,
            "hostname": "mx.test",
        }
        settings = SMTPChannelSettings(**(values | defaults | overrides))
        channel = SMTPChannel(settings, intake, quarantine)
        await channel.start()
        started.append(channel)
        return channel

    try:
        yield start
    finally:
        for channel in started:
            await channel.stop(grace_seconds=1)
