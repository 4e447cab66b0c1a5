"""When a failed outbound delivery is tried again, and when it is given up (dead-lettered).

Two bounds, as a mail queue has them:

- a **temporary** failure (relay down, timeout, 4xx, HTTP 408/429/5xx) is retried with capped
  exponential backoff and jitter until the row's lifetime runs out (default 5 days, Postfix's
  ``maximal_queue_lifetime``); the last attempt is made at the end of the lifetime, so a relay
  that comes back late still gets the message;
- a **permanent** failure (5xx from the relay, 4xx from an API, a malformed payload) is tried
  at most ``permanent_max_attempts`` times in all, then dead.

A ``Retry-After`` the receiver sent wins over the backoff (never beyond the lifetime).
Pure functions of their inputs: the caller passes the clock and the random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_LIFETIME_SECONDS = 5 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff_base_seconds: float = 1.0  # the first retry waits about this long
    backoff_max_seconds: float = 900.0  # no wait is longer (before jitter)
    lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS  # temporary failures: then dead
    permanent_max_attempts: int = 3  # permanent failures: dead after this many attempts

    def __post_init__(self) -> None:
        if self.backoff_base_seconds <= 0 or self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff needs 0 < backoff_base_seconds <= backoff_max_seconds")
        if self.lifetime_seconds <= 0 or self.permanent_max_attempts < 1:
            raise ValueError("lifetime_seconds and permanent_max_attempts must be positive")


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str  # why the row is dead, for its last_error and the log


def backoff_seconds(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """The wait after failed attempt number ``attempt`` (1-based): "equal jitter".

    The ceiling doubles per attempt from ``backoff_base_seconds`` up to
    ``backoff_max_seconds``; the wait is drawn uniformly from its upper half, so retries of
    many rows that failed together spread out, yet none comes back sooner than half the
    ceiling.
    """
    exponent = min(max(attempt - 1, 0), 64)  # 2**64 s is far past any cap
    ceiling = min(policy.backoff_max_seconds, policy.backoff_base_seconds * 2.0**exponent)
    return rng.uniform(ceiling / 2, ceiling)


def next_attempt(
    policy: RetryPolicy,
    *,
    attempts: int,
    permanent: bool,
    retry_after_seconds: float | None,
    queued_at: datetime,
    now: datetime,
    rng: random.Random,
) -> RetryAt | GiveUp:
    """What follows a failed attempt: the time of the next one, or giving up."""
    if permanent and attempts >= policy.permanent_max_attempts:
        return GiveUp(f"permanent failure after {attempts} attempts")
    expires_at = queued_at + timedelta(seconds=policy.lifetime_seconds)
    if now >= expires_at:
        return GiveUp(f"lifetime of {policy.lifetime_seconds:g}s over after {attempts} attempts")
    if retry_after_seconds is not None:
        delay = max(0.0, retry_after_seconds)
    else:
        delay = backoff_seconds(policy, attempts, rng)
    at = min(now + timedelta(seconds=delay), expires_at)
    return RetryAt(at, (at - now).total_seconds())
