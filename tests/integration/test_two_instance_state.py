"""Two gateways on one PostgreSQL: what one instance learns about a browser, the other knows.

Behind a load balancer any request may reach any instance. Before this state moved into the
database, each process kept its own: a random signing secret when ``SPOC_DASHBOARD_SECRET`` is
unset (a dashboard session made on A was refused on B; a web form rendered by A was refused
by B as forged), its own logouts (a logged-out cookie still opened B), and its own counts of
failed logins and web-form reports (every instance added its own allowance).

Both gateways are whole (``running_gateway``) and share one browser: aiohttp's cookie jar, like
a browser's, keys cookies by host, so a cookie set by A on 127.0.0.1 is sent to B too.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.dashboard.session import FAILED_LOGINS_PER_15_MINUTES
from tests.integration.gateway_harness import API_TOKEN, GatewayHarness, running_gateway

pytestmark = pytest.mark.postgres

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
WEBFORM = """
[webform]
enabled = true
max_reports_per_hour = 2
"""


@pytest.fixture
async def pair(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[GatewayHarness, GatewayHarness]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_gateway(tmp_path / "a", pg_url, extra_config=WEBFORM) as a,
        running_gateway(tmp_path / "b", pg_url, extra_config=WEBFORM) as b,
    ):
        yield a, b


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield session


async def csrf(browser: aiohttp.ClientSession, url: str) -> str:
    async with browser.get(url) as response:
        page = await response.text()
    found = CSRF.search(page)
    assert found, page
    return found.group(1)


async def log_in(browser: aiohttp.ClientSession, desk: GatewayHarness, credential: str) -> int:
    token = await csrf(browser, desk.base_url + "/dashboard/login")
    form = {"csrf": token, "credential": credential, "next": "/"}
    url = desk.base_url + "/dashboard/login"
    async with browser.post(url, data=form, allow_redirects=False) as response:
        return response.status


async def overview_status(browser: aiohttp.ClientSession, desk: GatewayHarness) -> int:
    async with browser.get(desk.base_url + "/", allow_redirects=False) as response:
        return response.status


async def test_a_session_made_on_one_instance_opens_the_dashboard_on_the_other(
    pair: tuple[GatewayHarness, GatewayHarness], browser: aiohttp.ClientSession
) -> None:
    a, b = pair
    assert await log_in(browser, a, API_TOKEN) == 303
    assert await overview_status(browser, a) == 200
    assert await overview_status(browser, b) == 200


async def test_a_logout_on_one_instance_ends_the_session_on_the_other(
    pair: tuple[GatewayHarness, GatewayHarness], browser: aiohttp.ClientSession
) -> None:
    a, b = pair
    assert await log_in(browser, a, API_TOKEN) == 303
    cookies = {c.key: c.value for c in browser.cookie_jar}
    token = await csrf(browser, b.base_url + "/")  # the logout form's token, rendered by B
    async with browser.post(b.base_url + "/dashboard/logout", data={"csrf": token}) as response:
        assert response.status == 200  # followed to the login page
    browser.cookie_jar.update_cookies(cookies)  # the old cookie, sent again (copied, replayed)
    assert await overview_status(browser, a) == 303  # to the login page


async def test_failed_logins_on_both_instances_count_toward_one_lockout(
    pair: tuple[GatewayHarness, GatewayHarness], browser: aiohttp.ClientSession
) -> None:
    a, b = pair
    for attempt in range(FAILED_LOGINS_PER_15_MINUTES):
        desk = a if attempt % 2 else b
        assert await log_in(browser, desk, f"guess-{attempt}") == 401
    assert await log_in(browser, a, API_TOKEN) == 429
    assert await log_in(browser, b, API_TOKEN) == 429


async def report(
    browser: aiohttp.ClientSession, shown_by: GatewayHarness, sent_to: GatewayHarness, n: int
) -> int:
    token = await csrf(browser, shown_by.base_url + "/report")
    form = aiohttp.FormData()
    for key, value in {
        "name": "Bob",
        "email": "bob@example.org",
        "description": f"Laptop dead, report {n}",
        "csrf": token,
    }.items():
        form.add_field(key, value)
    async with browser.post(sent_to.base_url + "/report", data=form) as response:
        return response.status


async def test_a_form_shown_by_one_instance_is_accepted_by_the_other(
    pair: tuple[GatewayHarness, GatewayHarness], browser: aiohttp.ClientSession
) -> None:
    a, b = pair
    assert await report(browser, a, b, 1) == 200


async def test_the_web_form_limit_counts_reports_sent_to_either_instance(
    pair: tuple[GatewayHarness, GatewayHarness], browser: aiohttp.ClientSession
) -> None:
    a, b = pair
    assert await report(browser, a, a, 1) == 200
    assert await report(browser, b, b, 2) == 200
    assert await report(browser, b, b, 3) == 429
    assert await report(browser, a, a, 4) == 429
