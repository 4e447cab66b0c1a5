"""CSRF tokens of the HTML forms (channels.forms): a token works only with the cookie of the
browser it was rendered for, unaltered and in time."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from channels.forms import FORM_COOKIE, FormGuard, FormRefused

SECRET = b"s" * 32


def request(cookie: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Cookie": f"{FORM_COOKIE}={cookie}"} if cookie else {}
    return make_mocked_request("POST", "/report", headers=headers)


def test_a_token_checks_out_with_its_browsers_cookie_and_yields_a_fresh_nonce() -> None:
    guard = FormGuard(SECRET, salt="t", max_age_seconds=60)
    first = guard.issue(request())
    assert first.cookie is not None
    second = guard.issue(request(first.cookie))
    assert second.cookie is None  # the browser keeps its key

    one = guard.check(request(first.cookie), first.token)
    two = guard.check(request(first.cookie), second.token)

    assert one and two and one != two


@pytest.mark.parametrize("case", ["no-cookie", "other-browser", "no-token", "altered", "salt"])
def test_a_token_is_refused_without_its_cookie_altered_or_from_another_form(case: str) -> None:
    guard = FormGuard(SECRET, salt="t", max_age_seconds=60)
    issued = guard.issue(request())
    assert issued.cookie is not None
    other = guard.issue(request()).cookie
    cookie, token = issued.cookie, issued.token
    if case == "no-cookie":
        cookie = None
    elif case == "other-browser":
        cookie = other
    elif case == "no-token":
        token = ""
    elif case == "altered":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    else:
        guard = FormGuard(SECRET, salt="another form", max_age_seconds=60)

    with pytest.raises(FormRefused):
        guard.check(request(cookie), token)


def test_an_expired_token_is_refused() -> None:
    issued = FormGuard(SECRET, salt="t", max_age_seconds=60).issue(request())
    assert issued.cookie is not None

    with pytest.raises(FormRefused, match="expired"):
        FormGuard(SECRET, salt="t", max_age_seconds=-1).check(request(issued.cookie), issued.token)
