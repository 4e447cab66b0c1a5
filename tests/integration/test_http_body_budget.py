"""The HTTP server's budget of request-body bytes in flight (``[server] max_inflight_body_bytes``,
``gateway.http_budget``), over real sockets: a real ``spoc`` HTTP app on 127.0.0.1 (the real
Store on SQLite and PostgreSQL, the real Router), bodies sent by hand on raw connections so
they can be held half-sent, the way a slow uploader holds them."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from channels.http_bodies import BODY_ROUTES_KEY, BodyRoute, add_body_route
from channels.inflight_budget import InflightBudget
from channels.webform.channel import max_report_bytes
from gateway.http import bound_port, start_http
from gateway.http_budget import (
    BODY_BUDGET_KEY,
    CLIENT_MAX_SIZE,
    DEFAULT_MAX_INFLIGHT_BODY_BYTES,
    MIN_INFLIGHT_BODY_BYTES,
    SMALL_BODY_HEADROOM,
)
from gateway.openapi import openapi_document
from router.store import Store
from tests.fakes.twilio_api import AUTH_TOKEN, FakeTwilioAPI
from tests.integration.gateway_harness import API_TOKEN, running_gateway
from tests.integration.slack_support import dm, slack_desk
from tests.integration.test_http_api import TOKEN, api_app
from tests.integration.test_webform import WEBFORM
from tests.integration.twilio_support import phone_desk, twilio_config

BIG = 1024 * 1024  # bytes: an upload, not a webhook


@dataclass
class Server:
    port: int
    budget: InflightBudget
    token: str = TOKEN

    async def open(
        self, path: str, length: int | None, *, sent: bytes = b"", expect: bool = False
    ) -> Held:
        """A POST whose headers and the first ``sent`` bytes of its body are on the wire
        (``expect``: with ``Expect: 100-continue``)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        framing = (
            f"Content-Length: {length}\r\n"
            if length is not None
            else "Transfer-Encoding: chunked\r\n"
        )
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\n{framing}"
            f"{'Expect: 100-continue' + chr(13) + chr(10) if expect else ''}\r\n"
        )
        writer.write(head.encode() + sent)
        await writer.drain()
        return Held(reader, writer)

    async def used(self, expected: int) -> None:
        """Wait until the budget holds ``expected`` bytes (the server reserves as it reads)."""
        for _ in range(500):
            if self.budget.used == expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"budget holds {self.budget.used} bytes, expected {expected}")


@dataclass
class Held:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        """The status, headers and JSON body of the response (read to its Content-Length)."""
        status, headers, body = await self.raw_answer()
        return status, headers, json.loads(body)

    async def raw_answer(self) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body of the response (read to its Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


def contact_json(size: int) -> bytes:
    """A valid ``POST /api/contacts`` body of exactly ``size`` bytes."""

    def body(text: str) -> bytes:
        return json.dumps(
            {"from": {"email": "alice@example.org"}, "subject": "Big", "text": text}
        ).encode()

    padding = size - len(body(""))
    assert padding > 0
    data = body("x" * padding)
    assert len(data) == size
    return data


async def serve(store: Store, budget_bytes: int, **options: Any) -> tuple[web.AppRunner, Server]:
    app = api_app(store, max_inflight_body_bytes=budget_bytes, **options)
    runner = await start_http(app, "127.0.0.1", 0)
    return runner, Server(bound_port(runner), app[BODY_BUDGET_KEY])


@pytest.fixture
async def server(store: Store) -> AsyncIterator[Server]:
    """A gateway whose budget takes two 1 MiB uploads and the small bodies' headroom."""
    runner, server = await serve(store, 2 * BIG + SMALL_BODY_HEADROOM)
    try:
        yield server
    finally:
        await runner.cleanup()


# ---- the budget refuses what does not fit, at once, and takes it again later ---------------
async def test_a_third_big_body_gets_503_with_retry_after_while_two_are_held_open(
    server: Server,
) -> None:
    body = contact_json(BIG)
    first = await server.open("/api/contacts", BIG, sent=body[: BIG // 2])
    second = await server.open("/api/contacts", BIG, sent=body[: BIG // 3])
    await server.used(2 * BIG)  # each reserved its Content-Length before reading it

    third = await server.open("/api/contacts", BIG, sent=body[:1000])
    status, headers, answer = await third.answer()  # at once: the body is not read
    assert status == 503, answer
    assert headers["retry-after"].isdigit() and int(headers["retry-after"]) > 0
    assert headers["content-type"].startswith("application/json")
    assert "bodies at once" in answer["error"]
    third.close()
    assert server.budget.used == 2 * BIG and server.budget.refused == 1

    await first.send(body[BIG // 2 :])
    await second.send(body[BIG // 3 :])
    assert (await first.answer())[0] == 201
    assert (await second.answer())[0] == 201
    first.close()
    second.close()
    await server.used(0)

    again = await server.open("/api/contacts", BIG, sent=body)
    status, _, answer = await again.answer()
    assert status == 201, answer
    again.close()


async def test_small_webhook_bodies_still_fit_while_big_ones_fill_the_budget(
    server: Server,
) -> None:
    body = contact_json(BIG)
    held = [await server.open("/api/contacts", BIG, sent=body[:100]) for _ in range(2)]
    await server.used(2 * BIG)
    # A third upload would fit the limit, but not beside the room kept for small bodies.
    third = await server.open("/api/contacts", BIG, sent=body[:100])
    assert (await third.answer())[0] == 503
    third.close()

    small = contact_json(2000)  # the size of a Twilio or Slack webhook
    request = await server.open("/api/contacts", len(small), sent=small)
    status, _, answer = await request.answer()
    assert status == 201, answer
    request.close()
    for one in held:
        one.close()
    await server.used(0)


async def test_a_body_bigger_than_the_whole_budget_gets_413_not_503(server: Server) -> None:
    size = server.budget.limit  # a big body must leave the headroom free: it can never fit
    request = await server.open("/api/contacts", size, sent=b"{")
    status, headers, answer = await request.answer()
    assert status == 413, answer
    assert "retry-after" not in headers
    request.close()
    assert server.budget.used == 0


# ---- the reservation is given back however the request ends ---------------------------------
async def test_the_budget_returns_to_zero_after_a_client_hangs_up_mid_body(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    body = contact_json(BIG)
    gone = [await server.open("/api/contacts", BIG, sent=body[: BIG // 4]) for _ in range(2)]
    await server.used(2 * BIG)
    with caplog.at_level(logging.INFO):
        for one in gone:
            one.close()
        await server.used(0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]

    request = await server.open("/api/contacts", BIG, sent=body)
    assert (await request.answer())[0] == 201
    request.close()


async def test_a_body_that_stalls_past_the_deadline_is_cut_off_and_gives_its_share_back(
    store: Store,
) -> None:
    runner, server = await serve(store, MIN_INFLIGHT_BODY_BYTES, body_timeout_seconds=0.5)
    try:
        body = contact_json(BIG)
        stalled = await server.open("/api/contacts", BIG, sent=body[:1000])
        await server.used(BIG)
        await server.used(0)  # after the deadline, not before the client gives up
        assert await asyncio.wait_for(stalled.reader.read(), 5) == b""  # closed, no answer
        stalled.close()

        quick = await server.open("/api/contacts", BIG, sent=body)  # in time: taken
        assert (await quick.answer())[0] == 201
        quick.close()
    finally:
        await runner.cleanup()


async def test_a_handler_still_busy_with_a_whole_body_after_the_deadline_is_not_cut_off(
    store: Store,
) -> None:
    async def slow(request: web.Request) -> web.Response:  # e.g. Slack's look-ups before its ack
        await request.read()
        await asyncio.sleep(1.0)
        return web.json_response({"ok": True})

    app = api_app(store, max_inflight_body_bytes=MIN_INFLIGHT_BODY_BYTES, body_timeout_seconds=0.2)
    app.router.add_post("/slow", slow)
    runner = await start_http(app, "127.0.0.1", 0)
    try:
        server = Server(bound_port(runner), app[BODY_BUDGET_KEY])
        request = await server.open("/slow", BIG, sent=b"x" * BIG)
        status, _, answer = await request.answer()
        assert (status, answer) == (200, {"ok": True})
        request.close()
        await server.used(0)
    finally:
        await runner.cleanup()


async def test_the_budget_is_given_back_after_an_error_answer(server: Server) -> None:
    junk = b"[" * 5000  # not a contact: 400, after the body was read
    for _ in range(5):
        request = await server.open("/api/contacts", len(junk), sent=junk)
        assert (await request.answer())[0] == 400
        request.close()
    await server.used(0)


# ---- each route's own limit ----------------------------------------------------------------
async def test_a_body_declared_larger_than_its_route_takes_gets_413_at_once_reserving_nothing(
    store: Store,
) -> None:
    runner, server = await serve(store, DEFAULT_MAX_INFLIGHT_BODY_BYTES)  # room for it
    try:
        request = await server.open("/api/contacts", CLIENT_MAX_SIZE + 1, sent=b"{")
        status, headers, answer = await request.answer()  # at once: the body is not awaited
        assert status == 413, answer
        assert f"larger than {CLIENT_MAX_SIZE} bytes" in answer["error"]
        assert "retry-after" not in headers
        assert server.budget.used == 0
        request.close()
    finally:
        await runner.cleanup()


async def test_a_route_declaring_a_larger_limit_reserves_up_to_it_and_refuses_beyond(
    store: Store,
) -> None:
    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await request.content.read())})

    app = api_app(store, max_inflight_body_bytes=DEFAULT_MAX_INFLIGHT_BODY_BYTES)
    add_body_route(app, "/upload", upload, max_body_bytes=4 * BIG)
    runner = await start_http(app, "127.0.0.1", 0)
    try:
        server = Server(bound_port(runner), app[BODY_BUDGET_KEY])
        held = await server.open("/upload", 3 * BIG, sent=b"x" * 100)
        await server.used(3 * BIG)
        refused = await server.open("/upload", 4 * BIG + 1, sent=b"x")
        assert (await refused.answer())[0] == 413
        refused.close()
        assert server.budget.used == 3 * BIG

        await held.send(b"x" * (3 * BIG - 100))
        assert (await held.answer())[:3:2] == (200, {"bytes": 3 * BIG})
        held.close()
        await server.used(0)
    finally:
        await runner.cleanup()


async def test_a_route_giving_its_own_too_large_answer_gets_it_and_the_others_keep_json(
    store: Store,
) -> None:
    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await request.content.read())})

    def too_large(request: web.Request) -> web.Response:
        return web.Response(status=413, text="<p>Too large for us</p>", content_type="text/html")

    app = api_app(store, max_inflight_body_bytes=DEFAULT_MAX_INFLIGHT_BODY_BYTES)
    add_body_route(app, "/upload", upload, max_body_bytes=BIG, too_large=too_large)
    runner = await start_http(app, "127.0.0.1", 0)
    try:
        server = Server(bound_port(runner), app[BODY_BUDGET_KEY])
        refused = await server.open("/upload", BIG + 1, expect=True)  # no body sent
        status, headers, page = await refused.raw_answer()  # not "100 Continue" first
        assert (status, page) == (413, b"<p>Too large for us</p>")
        assert headers["content-type"].startswith("text/html")
        assert headers["connection"] == "close"  # as for the gateway's own 413
        refused.close()

        api = await server.open("/api/contacts", CLIENT_MAX_SIZE + 1, sent=b"{")
        status, headers, answer = await api.answer()
        assert status == 413 and "larger than" in answer["error"]
        api.close()

        fits = await server.open("/upload", BIG, sent=b"x" * BIG)
        assert (await fits.answer())[:3:2] == (200, {"bytes": BIG})
        fits.close()
        await server.used(0)
    finally:
        await runner.cleanup()


async def test_every_route_that_reads_a_body_declares_the_largest_it_takes(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The web form's own limit is its files and text; every other route's, the default."""
    twilio = FakeTwilioAPI()
    await twilio.start()
    try:
        config = twilio_config(twilio, tmp_path / "spool") + WEBFORM
        environ = {"SPOC_TWILIO_AUTH_TOKEN": AUTH_TOKEN}
        async with running_gateway(
            tmp_path, sqlite_url, extra_config=config, environ=environ
        ) as desk:
            routes = {
                f"{route.method} {route.resource.canonical}": app.get(BODY_ROUTES_KEY, {}).get(
                    route
                )
                for app, route in body_routes(desk.gw.http_app)
            }
            assert {"POST /api/contacts", "POST /twilio/sms", "POST /report"} <= routes.keys()
            assert [name for name, route in routes.items() if route is None] == []
            report = max_report_bytes(2000)  # WEBFORM's max_attachment_bytes
            form = routes.pop("POST /report")
            assert form is not None and form.max_body_bytes == report
            assert form.too_large is not None  # its own page, not the API's JSON
            assert set(routes.values()) == {BodyRoute(CLIENT_MAX_SIZE)}

            server = Server(desk.gw.http_port, desk.gw.body_budget)
            too_big = await server.open("/report", report + 1, sent=b"-")
            head = await asyncio.wait_for(too_big.reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 413 "), head
            assert b"Content-Type: text/html" in head, head
            too_big.close()
            fits = await server.open("/report", report, sent=b"-")  # past the budget: the
            head = await asyncio.wait_for(fits.reader.readuntil(b"\r\n"), 10)  # form's 415
            assert head.startswith(b"HTTP/1.1 415 "), head
            fits.close()
            await server.used(0)
    finally:
        await twilio.stop()


def body_routes(app: web.Application) -> list[tuple[web.Application, web.AbstractRoute]]:
    """Every route of ``app`` and its sub-applications that takes a body, with its app."""
    found: list[tuple[web.Application, web.AbstractRoute]] = []
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            found += body_routes(resource.get_info()["app"])
            continue
        found += [(app, r) for r in resource if r.method not in ("GET", "HEAD")]
    return found


# ---- Expect: 100-continue --------------------------------------------------------------------
async def test_an_expect_100_continue_client_gets_the_503_before_sending_its_body(
    store: Store,
) -> None:
    runner, server = await serve(store, MIN_INFLIGHT_BODY_BYTES)
    try:
        server.budget.used = server.budget.limit  # spent
        request = await server.open("/api/contacts", 5000, expect=True)  # no body sent
        status, headers, answer = await request.answer()  # not "100 Continue" first
        assert status == 503, answer
        assert "retry-after" in headers
        # The connection will not carry another request: the body may or may not follow now.
        assert headers["connection"] == "close"
        request.close()
        server.budget.used = 0
    finally:
        await runner.cleanup()


async def test_an_expect_100_continue_client_gets_the_413_of_its_route_before_sending_its_body(
    server: Server,
) -> None:
    request = await server.open("/api/contacts", CLIENT_MAX_SIZE + 1, expect=True)
    status, _, answer = await request.answer()
    assert status == 413, answer
    request.close()
    assert server.budget.used == 0


async def test_an_expect_100_continue_client_is_told_to_continue_once_its_body_has_room(
    server: Server,
) -> None:
    body = contact_json(BIG)
    request = await server.open("/api/contacts", BIG, expect=True)
    interim = await asyncio.wait_for(request.reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert server.budget.used == BIG

    await request.send(body)
    status, _, answer = await request.answer()
    assert status == 201, answer
    request.close()
    await server.used(0)


async def test_an_expect_100_continue_client_with_an_empty_body_is_answered_too(
    server: Server,
) -> None:
    request = await server.open("/api/outbox/1/retry", 0, expect=True)
    interim = await asyncio.wait_for(request.reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    status, _, answer = await request.answer()
    assert status == 404, answer  # reached the handler: no such item
    request.close()


# ---- chunked bodies --------------------------------------------------------------------------
async def test_a_chunked_body_reserves_the_per_request_limit_until_it_ends(
    server: Server,
) -> None:
    body = contact_json(3000)
    request = await server.open("/api/contacts", None, sent=b"%x\r\n%s\r\n" % (100, body[:100]))
    await server.used(CLIENT_MAX_SIZE)  # not the 100 bytes sent so far: what it may grow to

    rest = body[100:]
    await request.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
    status, _, answer = await request.answer()
    assert status == 201, answer
    request.close()
    await server.used(0)


async def test_a_compressed_body_reserves_the_per_request_limit_not_its_length(
    server: Server,
) -> None:
    body = gzip.compress(contact_json(3000))  # inflates as the handler reads it
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /api/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (TOKEN.encode(), len(body), body[:10])
    )
    request = Held(reader, writer)
    await server.used(CLIENT_MAX_SIZE)
    await request.send(body[10:])
    status, _, answer = await request.answer()
    assert status == 201, answer
    request.close()
    await server.used(0)


async def test_a_chunked_body_that_does_not_fit_gets_503(store: Store) -> None:
    runner, server = await serve(store, MIN_INFLIGHT_BODY_BYTES)
    try:
        first = await server.open("/api/contacts", None, sent=b"1\r\n{\r\n")
        await server.used(CLIENT_MAX_SIZE)
        second = await server.open("/api/contacts", None, sent=b"1\r\n{\r\n")
        status, headers, _ = await second.answer()
        assert status == 503 and "retry-after" in headers
        second.close()
        first.close()
        await server.used(0)
    finally:
        await runner.cleanup()


# ---- what reserves nothing ------------------------------------------------------------------
async def test_get_and_empty_bodies_reserve_nothing_even_with_the_budget_spent(
    store: Store,
) -> None:
    runner, server = await serve(store, MIN_INFLIGHT_BODY_BYTES)
    try:
        server.budget.used = server.budget.limit  # spent: any body at all would be refused
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        status, _, answer = await Held(reader, writer).answer()
        assert status == 200, answer
        writer.close()

        empty = await server.open("/api/outbox/1/retry", 0)
        status, _, answer = await empty.answer()
        assert status == 404, answer  # reached the handler: no such item
        empty.close()

        small = await server.open("/api/outbox/1/retry", 2, sent=b"{}")
        assert (await small.answer())[0] == 503
        small.close()
        server.budget.used = 0
    finally:
        await runner.cleanup()


# ---- Twilio, which does not retry a 5xx, is not starved by uploads --------------------------
async def test_a_twilio_sms_is_taken_while_uploads_hold_the_rest_of_a_whole_gateways_budget(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with phone_desk(tmp_path, sqlite_url) as desk:  # the default budget, 64 MiB
        budget = desk.harness.gw.body_budget
        server = Server(desk.harness.gw.http_port, budget, API_TOKEN)
        uploads = (budget.limit - SMALL_BODY_HEADROOM) // CLIENT_MAX_SIZE  # each the most it takes
        held = [
            await server.open("/api/contacts", CLIENT_MAX_SIZE, sent=b"{") for _ in range(uploads)
        ]
        await server.used(uploads * CLIENT_MAX_SIZE)
        refused = await server.open("/api/contacts", CLIENT_MAX_SIZE, sent=b"{")
        assert (await refused.answer())[0] == 503  # no more room for uploads

        twiml = await desk.phone.sms("+12025550100", "My laptop will not start")

        assert twiml.status == 200, twiml
        [ticket] = await desk.tickets(channel="sms")
        assert ticket["ref"] in twiml.text
        for one in (*held, refused):
            one.close()
        await server.used(0)


# ---- Slack retries a 503 with X-Slack-Retry-Num: the message arrives once -------------------
async def test_a_slack_event_refused_for_want_of_budget_arrives_once_with_slacks_retry(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with slack_desk(tmp_path, sqlite_url) as (desk, _):
        budget = desk.harness.gw.body_budget
        event = dm("VPN is down for everyone on floor 2", desk.next_ts())
        budget.used = budget.limit  # spent to the last byte: small bodies' room too
        try:
            status, text = await desk.event(event, "Ev0BUDGET")
        finally:
            budget.used = 0
        assert status == 503 and "bodies at once" in json.loads(text)["error"]
        assert await desk.slack_tickets() == []

        for attempt in ("1", "2"):  # Slack retries at once, then after 1 and 5 minutes
            retry = {"X-Slack-Retry-Num": attempt, "X-Slack-Retry-Reason": "http_error"}
            status, _ = await desk.event(event, "Ev0BUDGET", headers=retry)
            assert status == 200
        [ticket] = await desk.slack_tickets()
        assert ticket["subject"].startswith("VPN is down")
        assert budget.used == 0


# ---- the OpenAPI document says so -----------------------------------------------------------
def test_every_api_operation_taking_a_body_documents_the_budgets_503_and_413() -> None:
    document = openapi_document()
    posts = [ops["post"] for ops in document["paths"].values() if "post" in ops]
    assert len(posts) >= 7
    for operation in posts:
        assert {"413", "503"} <= operation["responses"].keys(), operation["summary"]
    unavailable = document["components"]["responses"]["Unavailable"]
    assert "request bodies at once" in unavailable["description"]
    assert unavailable["headers"]["Retry-After"]["required"] is True
