"""The web form's per-address rate limit: per client address and per email address."""

from __future__ import annotations

from unittest import mock

from aiohttp.test_utils import make_mocked_request

from channels.rate_limits import MemoryRateLimiter
from channels.webform import WebFormChannel, WebFormSettings


class _NoIntake:
    async def submit(self, contact: object) -> object:
        raise AssertionError("not called")


def from_client(address: str):  # type: ignore[no-untyped-def]
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (address, 40000) if name == "peername" else default
    )
    return make_mocked_request("POST", "/report", transport=transport)


async def test_one_email_address_is_limited_whichever_client_sends_it() -> None:
    settings = WebFormSettings(secret=b"k" * 32, desk_address="d@x.example", max_reports_per_hour=2)
    channel = WebFormChannel(settings, _NoIntake())  # type: ignore[arg-type]

    assert await channel._over_limit(from_client("10.0.0.1"), "bob@example.org") is None
    assert await channel._over_limit(from_client("10.0.0.2"), "BOB@example.org") is None
    retry = await channel._over_limit(from_client("10.0.0.3"), "bob@example.org")

    assert retry is not None and 1 <= retry <= 3601
    assert await channel._over_limit(from_client("10.0.0.4"), "carol@example.org") is None


async def test_stopping_the_channel_drops_the_counts_it_kept_itself() -> None:
    settings = WebFormSettings(secret=b"k" * 32, desk_address="d@x.example", max_reports_per_hour=1)
    channel = WebFormChannel(settings, _NoIntake())  # type: ignore[arg-type]
    assert await channel._over_limit(from_client("10.0.0.1"), "") is None
    assert await channel._over_limit(from_client("10.0.0.1"), "") is not None

    await channel.stop(grace_seconds=0)

    assert await channel._over_limit(from_client("10.0.0.1"), "") is None


async def test_stopping_the_channel_leaves_a_given_limiter_alone() -> None:
    class Shared(MemoryRateLimiter):
        """The database's counts stand-in: kept by the gateway, shared by every instance."""

    shared = Shared()
    settings = WebFormSettings(secret=b"k" * 32, desk_address="d@x.example", max_reports_per_hour=1)
    channel = WebFormChannel(settings, _NoIntake(), limiter=shared)  # type: ignore[arg-type]
    assert await channel._over_limit(from_client("10.0.0.1"), "") is None

    await channel.stop(grace_seconds=0)

    assert await channel._over_limit(from_client("10.0.0.1"), "") is not None
