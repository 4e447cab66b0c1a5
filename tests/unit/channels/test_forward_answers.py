"""``channels.outbound.forward.check_answer``: what a forward target's HTTP answer means for
the dispatcher (deliver, retry when, or dead-letter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from channels.outbound import DeliveryError
from channels.outbound.forward import Answer, check_answer


def refusal(status: int, headers: dict[str, str] | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        check_answer(Answer(status, headers or {}, b""), "webhook l2-hook", "the tool's reason")
    return caught.value


def test_a_2xx_is_the_answer() -> None:
    answer = Answer(201, {}, b'{"id": 7}')
    assert check_answer(answer, "jira l2-jira") is answer


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_a_4xx_but_408_and_429_is_permanent_and_names_the_tools_reason(status: int) -> None:
    error = refusal(status)
    assert error.permanent
    assert str(error) == f"webhook l2-hook answered {status}: the tool's reason"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_408_429_and_5xx_are_retried(status: int) -> None:
    assert not refusal(status).permanent


def test_retry_after_in_seconds_is_passed_to_the_dispatcher() -> None:
    assert refusal(429, {"Retry-After": "120"}).retry_after == 120.0


def test_retry_after_as_an_http_date_is_passed_as_the_seconds_until_then() -> None:
    then = datetime.now(UTC) + timedelta(hours=1)
    seconds = refusal(503, {"Retry-After": format_datetime(then, usegmt=True)}).retry_after
    assert seconds is not None
    assert 3500 < seconds <= 3600


def test_a_redirect_is_permanent_and_not_followed() -> None:
    error = refusal(302, {"Location": "http://169.254.169.254/"})
    assert error.permanent
    assert "redirects are not followed" in str(error)
