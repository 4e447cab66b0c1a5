"""What every outbound transport shares (channels.outbound): Retry-After and which HTTP
statuses are worth a retry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.outbound import DeliveryError, permanent_http_status, retry_after_seconds

NOW = datetime(2026, 10, 21, 7, 0, 0, tzinfo=UTC)


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds(" 0 ", NOW) == 0.0


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT", NOW) == 28 * 60


def test_retry_after_in_the_past_means_now() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2026 06:00:00 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "١٢", "Wed, 99 Foo 2026"])
def test_an_unreadable_retry_after_is_ignored_not_an_error(value: str | None) -> None:
    assert retry_after_seconds(value, NOW) is None


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (408, False),
                                                   (429, False), (500, False), (503, False),
                                                   (200, False)])  # fmt: skip
def test_4xx_is_permanent_but_request_timeout_and_too_many_requests(
    status: int, permanent: bool
) -> None:
    assert permanent_http_status(status) is permanent


def test_delivery_error_carries_retry_after() -> None:
    exc = DeliveryError("busy", permanent=False, retry_after=30.0)
    assert (exc.permanent, exc.retry_after) == (False, 30.0)
    assert DeliveryError("x", permanent=True).retry_after is None
