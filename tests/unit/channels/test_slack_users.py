"""users.info -> Party, with a TTL cache and a clear word when a scope is missing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from channels.slack.users import SlackUsers
from normalizer.contact import Party
from tests.unit.channels.slack_stubs import StubClient, api_error


def alice(email: str | None = "Alice@Example.org") -> dict[str, object]:
    profile: dict[str, object] = {"real_name": "Alice Example"}
    if email is not None:
        profile["email"] = email
    return {"ok": True, "user": {"id": "U1", "name": "alice", "profile": profile}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_users_info_gives_email_and_name_and_is_cached_until_the_ttl() -> None:
    client, clock = StubClient(**{"users.info": alice()}), Clock()
    users = SlackUsers(client, ttl_seconds=60, clock=clock)
    expected = Party(slack_user_id="U1", email="alice@example.org", name="Alice Example")
    assert await users.party("U1") == expected
    clock.now += 59
    assert await users.party("U1") == expected
    assert len(client.calls) == 1
    clock.now += 2
    await users.party("U1")
    assert len(client.calls) == 2


async def test_without_the_email_scope_the_party_is_the_slack_id_and_the_scope_is_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = StubClient(**{"users.info": alice(email=None)})
    users = SlackUsers(client, ttl_seconds=60, clock=Clock())
    with caplog.at_level(logging.WARNING):
        party = await users.party("U1")
        await users.party("U2")
    assert party == Party(slack_user_id="U1", name="Alice Example")
    assert caplog.text.count("users:read.email") == 1


async def test_missing_users_read_scope_falls_back_to_the_slack_id_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = api_error("missing_scope", needed="users:read", provided="chat:write")
    users = SlackUsers(StubClient(**{"users.info": refused}), clock=Clock())
    with caplog.at_level(logging.WARNING):
        assert await users.party("U1") == Party(slack_user_id="U1")
    assert "lacks the users:read scope" in caplog.text


async def test_a_failed_lookup_is_not_cached() -> None:
    client = StubClient(**{"users.info": [OSError("connection refused"), alice()]})
    users = SlackUsers(client, clock=Clock())
    assert await users.party("U1") == Party(slack_user_id="U1")
    assert (await users.party("U1")).email == "alice@example.org"


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@b", "x <evil@example.org>", "a@b.c\r\nBcc: z"]
)
async def test_an_email_that_is_not_one_address_is_ignored(email: str) -> None:
    users = SlackUsers(StubClient(**{"users.info": alice(email)}), clock=Clock())
    assert (await users.party("U1")).email is None


async def test_concurrent_lookups_of_one_user_share_one_call() -> None:
    client = StubClient(**{"users.info": alice()})
    users = SlackUsers(client, clock=Clock())
    parties = await asyncio.gather(*(users.party("U1") for _ in range(5)))
    assert len(set(parties)) == 1 and len(client.calls) == 1
