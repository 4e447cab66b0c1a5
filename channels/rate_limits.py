"""Rate limits kept in this process: :class:`normalizer.rate_limits.RateLimiter` for a web form
or dashboard run without a database (tests, an embedded app), on ``limits``' moving window.

``spoc serve`` does not use it: the gateway passes ``router.rate_limits.RateLimits``, counted
in the database alike on every instance.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, scope: str, key: str, limit: int, window_seconds: float) -> float | None:
        item = _item(limit, window_seconds)
        if self._limiter.hit(item, scope, key):
            return None
        return self._retry_after(item, scope, key)

    async def wait(self, scope: str, key: str, limit: int, window_seconds: float) -> float | None:
        item = _item(limit, window_seconds)
        if self._limiter.test(item, scope, key):
            return None
        return self._retry_after(item, scope, key)

    def _retry_after(self, item: RateLimitItem, scope: str, key: str) -> float:
        reset = self._limiter.get_window_stats(item, scope, key)[0]
        return max(0.0, reset - time.time())

    def reset(self) -> None:
        self._limiter.storage.reset()


def _item(limit: int, window_seconds: float) -> RateLimitItem:
    return RateLimitItemPerSecond(limit, max(1, round(window_seconds)))
