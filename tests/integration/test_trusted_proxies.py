"""``[server] trusted_proxies``: whose address the web form's and the login's limits count, over
real HTTP on 127.0.0.1 through a whole gateway. Every request comes from 127.0.0.1, like a
reverse proxy on the same host; the X-Forwarded-For header says which browser it forwards."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.integration.gateway_harness import GatewayHarness, running_gateway
from tests.integration.test_webform import CSRF, form_token, send

ONE_REPORT_AN_HOUR = """
[webform]
enabled = true
max_reports_per_hour = 1
"""
TRUST_LOOPBACK = 'trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]'


@asynccontextmanager
async def browser(forwarded_for: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser whose requests reach the gateway with this X-Forwarded-For."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"X-Forwarded-For": forwarded_for}
    ) as session:
        yield session


async def report(desk: GatewayHarness, forwarded_for: str, email: str) -> int:
    """Send one valid report (each from its own email address, so only the client limit can
    refuse it); its HTTP status."""
    async with browser(forwarded_for) as session:
        status, _page = await send(desk, session, await form_token(desk, session), email=email)
        return status


async def test_without_trusted_proxies_a_forged_header_gets_no_limit_of_its_own(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_gateway(tmp_path, sqlite_url, extra_config=ONE_REPORT_AN_HOUR) as desk:
        assert await report(desk, "192.0.2.1", "a@example.org") == 200

        again = await report(desk, "192.0.2.2", "b@example.org")

        assert again == 429  # counted against the peer, 127.0.0.1, whatever the header says


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_gateway(
        tmp_path, sqlite_url, extra_config=ONE_REPORT_AN_HOUR, server_keys=TRUST_LOOPBACK
    ) as desk:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            assert await report(desk, "192.0.2.1", "a@example.org") == 200
            assert await report(desk, "192.0.2.1", "b@example.org") == 429

            other = await report(desk, "192.0.2.2", "c@example.org")

        assert other == 200
        clients = {record.getMessage().split()[0] for record in caplog.records}
        assert clients == {"192.0.2.1", "192.0.2.2"}  # the access log names them, not the proxy


async def test_a_chain_counts_the_address_the_trusted_proxy_appended_not_the_forged_one(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_gateway(
        tmp_path, sqlite_url, extra_config=ONE_REPORT_AN_HOUR, server_keys=TRUST_LOOPBACK
    ) as desk:
        # the browser at 198.51.100.7 forges a first hop; a second trusted proxy (10.1.2.3) adds
        # itself on the way: the client is the right-most address that is not a trusted proxy
        assert await report(desk, "203.0.113.1, 198.51.100.7, 10.1.2.3", "a@example.org") == 200

        forged_anew = await report(desk, "203.0.113.2, 198.51.100.7", "b@example.org")
        someone_else = await report(desk, "203.0.113.1, 198.51.100.8", "c@example.org")

        assert forged_anew == 429  # the same real client, however it fills in the header
        assert someone_else == 200  # the forged address it used is no one's limit


async def test_failed_logins_lock_out_only_the_forwarded_client_that_made_them(
    tmp_path: Path, sqlite_url: str
) -> None:
    async def login(session: aiohttp.ClientSession) -> int:
        async with session.get(desk.base_url + "/dashboard/login") as response:
            found = CSRF.search(await response.text())
        assert found
        form = {"csrf": found.group(1), "credential": "a wrong token", "next": "/"}
        async with session.post(
            desk.base_url + "/dashboard/login", data=form, allow_redirects=False
        ) as response:
            return response.status

    async with (
        running_gateway(tmp_path, sqlite_url, server_keys=TRUST_LOOPBACK) as desk,
        browser("192.0.2.1") as guesser,
        browser("192.0.2.2") as operator,
    ):
        statuses = [await login(guesser) for _ in range(11)]

        assert statuses[:10] == [401] * 10 and statuses[10] == 429
        assert await login(operator) == 401  # told the token is wrong, not locked out
