"""The end users' web form (``/report``, channel ``web``) through a whole gateway: real HTTP on
127.0.0.1, SQLite, the outbox dispatcher and a relay sink that receives the acknowledgement."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from channels.webform import WebFormChannel, WebFormSettings
from channels.webform.channel import max_report_bytes
from normalizer.contact import Contact
from normalizer.intake import IntakeResult, TemporaryIntakeError
from tests.integration.gateway_harness import GatewayHarness, running_gateway

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
WEBFORM = """
[webform]
enabled = true
max_attachment_bytes = 2000
max_reports_per_hour = 3
[[webform.categories]]
name = "broken_device"
label = "Something is broken"
"""


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, sqlite_url, extra_config=WEBFORM) as harness:
        yield harness


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def form_token(desk: GatewayHarness, browser: aiohttp.ClientSession) -> str:
    async with browser.get(desk.base_url + "/report") as response:
        assert response.status == 200
        page = await response.text()
    found = CSRF.search(page)
    assert found, page
    return found.group(1)


async def send(
    desk: GatewayHarness,
    browser: aiohttp.ClientSession,
    csrf: str | None,
    files: Sequence[tuple[str, bytes]] = (),
    **fields: str,
) -> tuple[int, str]:
    form = aiohttp.FormData()
    values = {"name": "Bob", "email": "bob@example.org", "description": "Laptop dead"}
    values.update(fields)
    if csrf is not None:
        values["csrf"] = csrf
    for key, value in values.items():
        form.add_field(key, value)
    for name, data in files:
        form.add_field("attachments", data, filename=name, content_type="image/jpeg")
    async with browser.post(desk.base_url + "/report", data=form) as response:
        return response.status, await response.text()


async def tickets(desk: GatewayHarness) -> list[dict[str, object]]:
    status, body = await desk.api("GET", "/api/tickets")
    assert status == 200
    items: list[dict[str, object]] = body["tickets"]
    return items


async def test_a_report_opens_a_web_ticket_names_its_ref_and_is_acked_by_email(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    csrf = await form_token(desk, browser)

    status, page = await send(
        desk, browser, csrf, files=[("shot.png", b"\x89PNG fake")], category="broken_device"
    )

    assert status == 200, page
    ref = re.search(r'<strong id="ref">(SD-\d+)</strong>', page)
    assert ref
    [ack] = await desk.sink.wait_for(1)
    assert ack["To"] == "bob@example.org" and f"[{ref.group(1)}]" in ack["Subject"]
    ticket = await desk.ticket(ref.group(1))
    assert ticket["channel"] == "web" and ticket["category"] == "broken_device"
    [contact] = ticket["contacts"]
    assert contact["attachments"][0]["filename"] == "shot.png"
    assert contact["attachments"][0]["content_type"] == "image/png"


async def test_the_same_page_sent_twice_is_one_ticket(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    csrf = await form_token(desk, browser)

    first = await send(desk, browser, csrf)
    again = await send(desk, browser, csrf)

    assert first[0] == again[0] == 200
    assert len(await tickets(desk)) == 1
    assert re.findall(r"SD-\d+", first[1])[0] == re.findall(r"SD-\d+", again[1])[0]


async def test_without_a_valid_form_token_nothing_is_stored(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    await form_token(desk, browser)  # the browser has its cookie, the attacker's page no token
    for token in (None, "", "forged.token.value"):
        status, page = await send(desk, browser, token)
        assert status == 403 and ("security token" in page or "altered" in page)
    async with aiohttp.ClientSession() as stranger:  # a token without its browser's cookie
        status, _ = await send(desk, stranger, await form_token(desk, browser))
        assert status == 403
    assert await tickets(desk) == []


async def test_a_filled_honeypot_is_refused_out_loud_and_nothing_is_stored(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    status, page = await send(desk, browser, await form_token(desk, browser), website="spam")

    assert status == 400 and "must stay empty" in page
    assert await tickets(desk) == []


async def test_a_bad_field_shows_the_form_again_naming_it_and_keeping_what_was_typed(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    status, page = await send(
        desk, browser, await form_token(desk, browser), email="not-an-address",
        description="<b>keep</b> me",
    )  # fmt: skip

    assert status == 400
    assert 'data-field="email"' in page and "email is not an email address" in page
    assert "&lt;b&gt;keep&lt;/b&gt; me</textarea>" in page
    assert CSRF.search(page)  # a fresh token to send it again
    assert await tickets(desk) == []


async def test_attachments_over_the_limit_are_refused_and_nothing_is_stored(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    status, page = await send(
        desk, browser, await form_token(desk, browser), files=[("big.bin", b"x" * 2001)]
    )

    assert status == 413 and "MiB in all" in page
    assert await tickets(desk) == []


async def test_an_upload_far_over_the_limit_gets_the_forms_413_page_not_json(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    # Declared larger than any report can be, it is refused before its body is read (the
    # HTTP body budget), but in the form's own words and page, as the smaller upload above.
    csrf = await form_token(desk, browser)
    over = max_report_bytes(2000) + 64 * 1024  # WEBFORM's max_attachment_bytes, and more
    form = aiohttp.FormData()
    for key, value in {"email": "bob@example.org", "description": "Dead", "csrf": csrf}.items():
        form.add_field(key, value)
    form.add_field("attachments", b"\xff" * over, filename="a.jpg", content_type="image/jpeg")
    async with browser.post(desk.base_url + "/report", data=form) as response:
        page = await response.text()
        assert response.status == 413, page
        assert response.content_type == "text/html"
    assert 'id="error" data-field="attachments">attachments may be 0.00190735 MiB in all<' in page
    assert CSRF.search(page), page  # the form again, ready to be sent with fewer files
    assert await tickets(desk) == []


async def test_a_chunked_upload_gets_411_and_nothing_is_stored(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    # Without a Content-Length the body budget could not charge what the form reader holds.
    csrf = await form_token(desk, browser)
    form = aiohttp.FormData()
    for key, value in {"email": "bob@example.org", "description": "Dead", "csrf": csrf}.items():
        form.add_field(key, value)
    form.add_field("attachments", b"\xff" * 1000, filename="a.jpg", content_type="image/jpeg")
    async with browser.post(desk.base_url + "/report", data=form, chunked=True) as response:
        assert response.status == 411, await response.text()
        assert "Content-Length" in await response.text()
    assert await tickets(desk) == []


async def test_a_compressed_upload_gets_415_and_nothing_is_stored(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    # aiohttp inflates it as it reads: a few KiB declared could become the whole file limit,
    # more than the body budget charged for it.
    csrf = await form_token(desk, browser)
    fields = {"email": "bob@example.org", "description": "Dead", "csrf": csrf}
    body = "".join(
        f'--b0undary\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        for key, value in fields.items()
    )
    headers = {
        "Content-Type": "multipart/form-data; boundary=b0undary",
        "Content-Encoding": "gzip",
    }
    packed = gzip.compress(f"{body}--b0undary--\r\n".encode())
    async with browser.post(desk.base_url + "/report", data=packed, headers=headers) as response:
        assert response.status == 415, await response.text()
        assert "Content-Encoding" in await response.text()
    assert await tickets(desk) == []


async def test_more_reports_than_the_hourly_limit_get_429_but_typos_do_not_count(
    desk: GatewayHarness, browser: aiohttp.ClientSession
) -> None:
    for _ in range(4):
        status, _page = await send(desk, browser, await form_token(desk, browser), email="x")
        assert status == 400
    for _ in range(3):
        status, _page = await send(desk, browser, await form_token(desk, browser))
        assert status == 200

    status, page = await send(desk, browser, await form_token(desk, browser))

    assert status == 429 and "Too many reports" in page
    assert len(await tickets(desk)) == 3
    other = await send(desk, browser, await form_token(desk, browser), email="eve@example.org")
    assert other[0] == 429  # the same client, whatever address it gives


async def test_the_form_is_not_there_unless_enabled(tmp_path: Path, sqlite_url: str) -> None:
    async with (
        running_gateway(tmp_path, sqlite_url) as harness,
        aiohttp.ClientSession() as session,
        session.get(harness.base_url + "/report") as response,
    ):
        assert response.status == 404


class _DatabaseDown:
    """The router's answer while the database is unavailable: nothing was committed."""

    async def submit(self, contact: Contact) -> IntakeResult:
        raise TemporaryIntakeError("database unavailable")


async def test_while_the_database_is_down_the_user_is_told_to_send_again(tmp_path: Path) -> None:
    settings = WebFormSettings(secret=b"k" * 32, desk_address="servicedesk@example.com")
    app = web.Application()
    WebFormChannel(settings, _DatabaseDown()).add_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        page = await (await client.get("/report")).text()
        found = CSRF.search(page)
        assert found
        form = aiohttp.FormData(
            {"csrf": found.group(1), "email": "bob@example.org", "description": "Laptop dead"}
        )

        response = await client.post("/report", data=form)

        assert response.status == 503
        text = await response.text()
        assert "Nothing was lost: send it again" in text and "Laptop dead</textarea>" in text
