"""The retry policy of outbound deliveries (router.retry): backoff bounds, jitter, the
lifetime of temporary failures, the attempt bound of permanent ones, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from router.retry import GiveUp, RetryAt, RetryPolicy, backoff_seconds, next_attempt

QUEUED = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy(backoff_base_seconds=1.0, backoff_max_seconds=900.0)


def decide(
    *,
    attempts: int,
    now: datetime,
    permanent: bool = False,
    retry_after: float | None = None,
    policy: RetryPolicy = POLICY,
    seed: int = 1,
) -> RetryAt | GiveUp:
    return next_attempt(
        policy,
        attempts=attempts,
        permanent=permanent,
        retry_after_seconds=retry_after,
        queued_at=QUEUED,
        now=now,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 10, 11, 30, 1000])
def test_backoff_stays_between_half_and_all_of_its_capped_ceiling(attempt: int) -> None:
    ceiling = min(900.0, 2.0 ** (attempt - 1))
    rng = random.Random(attempt)
    waits = [backoff_seconds(POLICY, attempt, rng) for _ in range(500)]
    assert all(ceiling / 2 <= w <= ceiling for w in waits)


def test_backoff_is_jittered_so_rows_that_failed_together_spread_out() -> None:
    rng = random.Random(7)
    waits = {round(backoff_seconds(POLICY, 12, rng), 3) for _ in range(50)}
    assert len(waits) > 40  # not one value for every row
    assert max(waits) - min(waits) > 200  # spread over the upper half of 900 s


def test_backoff_never_exceeds_the_configured_maximum() -> None:
    policy = RetryPolicy(backoff_base_seconds=5.0, backoff_max_seconds=60.0)
    rng = random.Random(3)
    assert max(backoff_seconds(policy, n, rng) for n in range(1, 200)) <= 60.0


def test_a_temporary_failure_after_two_minutes_of_outage_is_retried_not_dead() -> None:
    # The old dispatcher gave up after 8 attempts, about two minutes: a coffee break.
    decision = decide(attempts=9, now=QUEUED + timedelta(minutes=3))
    assert isinstance(decision, RetryAt)


def test_temporary_failures_retry_until_the_lifetime_is_over() -> None:
    lifetime = timedelta(seconds=POLICY.lifetime_seconds)
    assert POLICY.lifetime_seconds == 5 * 24 * 3600
    before = decide(attempts=600, now=QUEUED + lifetime - timedelta(seconds=1))
    assert isinstance(before, RetryAt)
    after = decide(attempts=601, now=QUEUED + lifetime)
    assert isinstance(after, GiveUp) and "lifetime" in after.reason


def test_the_last_retry_is_made_at_the_end_of_the_lifetime_not_after_it() -> None:
    policy = RetryPolicy(lifetime_seconds=3600.0, backoff_max_seconds=900.0)
    now = QUEUED + timedelta(seconds=3500)
    decision = decide(attempts=20, now=now, policy=policy)
    assert isinstance(decision, RetryAt)
    assert decision.at == QUEUED + timedelta(seconds=3600)
    assert decision.delay_seconds == 100


def test_permanent_failures_are_given_up_after_the_configured_attempts() -> None:
    policy = RetryPolicy(permanent_max_attempts=3)
    assert isinstance(decide(attempts=2, now=QUEUED, permanent=True, policy=policy), RetryAt)
    dead = decide(attempts=3, now=QUEUED, permanent=True, policy=policy)
    assert isinstance(dead, GiveUp) and "permanent" in dead.reason


def test_retry_after_wins_over_the_backoff_exactly() -> None:
    now = QUEUED + timedelta(minutes=1)
    decision = decide(attempts=1, now=now, retry_after=120.0)
    assert decision == RetryAt(now + timedelta(seconds=120), 120.0)


def test_retry_after_beyond_the_lifetime_is_cut_at_the_lifetime() -> None:
    policy = RetryPolicy(lifetime_seconds=600.0)
    decision = decide(attempts=1, now=QUEUED, retry_after=86400.0, policy=policy)
    assert decision == RetryAt(QUEUED + timedelta(seconds=600), 600.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backoff_base_seconds": 0.0},
        {"backoff_base_seconds": 10.0, "backoff_max_seconds": 5.0},
        {"lifetime_seconds": 0.0},
        {"permanent_max_attempts": 0},
    ],
)
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
