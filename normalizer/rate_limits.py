"""The contract of a moving-window rate limit shared by every gateway (web form, login lockout).

Like :mod:`normalizer.intake`, it sits in the shared kernel so that a channel (the web form)
can use the database's implementation (``router.rate_limits``) without importing ``router``.
A limit is ``limit`` events per ``window_seconds`` for one ``key`` (a client address, an email
address) within a ``scope`` (``"webform.client"``, ``"login"``): counted alike on every
instance, so adding instances behind a load balancer does not multiply anyone's allowance.
"""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    """Both methods raise :class:`~normalizer.intake.TemporaryIntakeError` when the database
    is down."""

    async def hit(self, scope: str, key: str, limit: int, window_seconds: float) -> float | None:
        """Count one event for ``key``, unless ``limit`` were counted in the last window: then
        count nothing and return the seconds until one more would be allowed."""
        ...

    async def wait(self, scope: str, key: str, limit: int, window_seconds: float) -> float | None:
        """The seconds until one more event would be allowed, or None when it is now (counts
        nothing)."""
        ...
