"""Operator sessions (gateway.dashboard.session): who may log in, what the cookie proves."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from argon2 import PasswordHasher

from gateway.dashboard.session import (
    FAILED_LOGINS_PER_15_MINUTES,
    SESSION_COOKIE,
    Operator,
    Sessions,
)

TOKEN = "api-token-0123456789"


def sessions(password: str | None = None, secret: bytes = b"k" * 32) -> Sessions:
    hashed = PasswordHasher().hash(password) if password else None
    return Sessions(secret, tokens=(TOKEN.encode(),), password_hash=hashed, max_age_seconds=3600)


def with_cookie(value: str):  # type: ignore[no-untyped-def]
    return make_mocked_request("GET", "/", headers={"Cookie": f"{SESSION_COOKIE}={value}"})


def cookie_of(s: Sessions, operator: Operator) -> str:
    response = web.Response()
    s.start(response, operator, secure=True)
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Strict"
    return morsel.value


async def test_an_api_token_or_the_operator_password_logs_in_and_nothing_else() -> None:
    s = sessions(password="correct horse battery staple")

    by_token = await s.login(TOKEN, "10.0.0.1")
    by_password = await s.login("correct horse battery staple", "10.0.0.1")

    assert by_token is not None and by_token.via == "token"
    assert by_password is not None and by_password.via == "password"
    for wrong in ("", "   ", TOKEN + "x", TOKEN[:-1], "correct horse", "x" * 5000):
        assert await s.login(wrong, "10.0.0.1") is None, wrong


async def test_without_a_password_hash_a_password_never_logs_in() -> None:
    assert await sessions().login("anything", "10.0.0.2") is None


async def test_the_session_cookie_proves_the_session_and_holds_no_credential() -> None:
    s = sessions()
    operator = await s.login(TOKEN, "10.0.0.1")
    assert operator is not None
    value = cookie_of(s, operator)

    assert TOKEN not in value
    assert await s.read(with_cookie(value)) == operator
    assert await s.read(with_cookie(value[:-3] + "abc")) is None  # altered
    assert await sessions(secret=b"o" * 32).read(with_cookie(value)) is None  # another secret


async def test_logging_out_revokes_the_cookie_even_if_it_is_sent_again() -> None:
    s = sessions()
    operator = await s.login(TOKEN, "10.0.0.1")
    assert operator is not None
    value = cookie_of(s, operator)

    await s.end(web.Response(), operator)

    assert await s.read(with_cookie(value)) is None


async def test_too_many_failed_logins_lock_out_that_client_only() -> None:
    s = sessions()
    for _ in range(FAILED_LOGINS_PER_15_MINUTES):
        assert not await s.locked_out("10.0.0.9")
        await s.login("guess", "10.0.0.9")

    assert await s.locked_out("10.0.0.9")
    assert not await s.locked_out("10.0.0.10")


@pytest.mark.parametrize("value", ["", "garbage", "a.b.c", "eyJzaWQiOjF9.x.y"])
async def test_a_malformed_cookie_is_no_session(value: str) -> None:
    assert await sessions().read(with_cookie(value)) is None


def test_a_login_link_starts_one_session_and_is_refused_the_second_time() -> None:
    s = sessions()
    token = s.login_link()

    first = s.spend_link(token)
    again = s.spend_link(token)

    assert first is not None and first.via == "link"
    assert again is None


def test_a_login_link_nobody_issued_or_one_that_expired_is_refused() -> None:
    s = sessions()
    expired = s.login_link(ttl_seconds=-1)
    assert s.spend_link("made-up-token") is None
    assert s.spend_link(expired) is None
    assert s.spend_link("") is None
