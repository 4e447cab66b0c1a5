"""The HTTP app end to end: a real aiohttp server on 127.0.0.1, the real Store on SQLite, the
real Router and TicketService. Only the HTTP client is a test helper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway.http import CLIENT_MAX_SIZE, bound_port, build_app, start_http
from gateway.metrics import MeteredIntake, Metrics
from gateway.migrate import upgrade
from normalizer.contact import Channel, Contact, Party, ThreadHints
from router.router import Router
from router.schema import contacts
from router.settings import Group, RouterSettings
from router.store import Store
from router.tickets import TicketService

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETTINGS = RouterSettings(
    ticket_prefix="SD",
    desk_address="servicedesk@example.com",
    groups=(
        Group("service-desk", 1.0),
        Group("customer-support", 1.5),
        Group("l2-apps", 2.0),
        Group("vendor-acme", 3.0),
    ),
)
TICKET_KEYS = {
    "ref", "status", "kind", "category", "priority", "owner", "group", "tier", "channel",
    "subject", "created_at", "updated_at", "requester", "contacts", "events",
}  # fmt: skip
REQUESTER_KEYS = {"id", "name", "email", "phone", "slack_user_id"}
CONTACT_KEYS = {
    "id", "channel", "direction", "received_at", "from", "subject", "text", "external_id",
    "attachments",
}  # fmt: skip
SUMMARY_KEYS = {"ref", "status", "channel", "subject", "group", "priority", "created_at"}


@dataclass
class Gateway:
    client: TestClient[Any, Any]
    store: Store
    router: Router

    async def post(self, path: str, body: object, headers: dict[str, str] = AUTH) -> ClientResponse:
        return await self.client.post(path, json=body, headers=headers)

    async def get(self, path: str, **params: str) -> ClientResponse:
        return await self.client.get(path, params=params, headers=AUTH)

    async def new_contact(self, **overrides: Any) -> dict[str, Any]:
        response = await self.post("/api/contacts", contact_body(**overrides))
        assert response.status == 201, await response.text()
        ticket: dict[str, Any] = await response.json()
        return ticket

    async def metric(self, name: str, **labels: str) -> float:
        response = await self.client.get("/metrics")
        assert response.status == 200
        for family in text_string_to_metric_families(await response.text()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        raise AssertionError(f"no sample {name} {labels}")


def contact_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "alice@example.org", "name": "Alice"},
        "subject": "Printer on fire",
        "text": "Floor 3, next to the kitchen.",
    }
    body.update(overrides)
    return body


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'spoc.db'}"
    upgrade(url)
    store = Store.from_url(url)
    await store.start()
    yield store
    await store.close()


def api_app(store: Store, router: Router | None = None, **options: Any) -> web.Application:
    """The gateway's HTTP app over ``store`` with the API on (``options``: more of build_app's)."""
    metrics = Metrics()
    return build_app(
        store=store,
        tickets=TicketService(store, SETTINGS),
        intake=MeteredIntake(router or Router(store, SETTINGS), metrics),
        metrics=metrics,
        **{"api_tokens": (TOKEN,), "api_enabled": True, **options},
    )


async def serve(
    store: Store, *, api_tokens: tuple[str, ...] = (TOKEN,), api_enabled: bool = True
) -> tuple[TestClient[Any, Any], Router]:
    router = Router(store, SETTINGS)
    app = api_app(store, router, api_tokens=api_tokens, api_enabled=api_enabled)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client, router


@pytest.fixture
async def gw(store: Store) -> AsyncIterator[Gateway]:
    client, router = await serve(store)
    try:
        yield Gateway(client, store, router)
    finally:
        await client.close()


async def assert_error(response: ClientResponse, status: int, field: str | None = None) -> None:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    data = await response.json()
    assert isinstance(data.get("error"), str) and data["error"]
    if field is not None:
        assert data.get("field") == field, data


# ---- health, readiness, metrics -------------------------------------------------------------
async def test_healthz_answers_ok(gw: Gateway) -> None:
    response = await gw.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_answers_ready_while_the_database_answers(gw: Gateway) -> None:
    response = await gw.client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_a_closed_store_makes_readyz_503_and_contacts_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'closed.db'}"
    upgrade(url)
    store = Store.from_url(url)
    await store.start()
    await store.close()
    client, _ = await serve(store)
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        assert await response.json() == {"status": "unavailable"}
        metrics = await client.get("/metrics")  # still answers without the outbox depth
        assert metrics.status == 200
        assert "spoc_outbox_depth" in await metrics.text()
        contact = await client.post("/api/contacts", json=contact_body(), headers=AUTH)
        await assert_error(contact, 503)
        assert contact.headers["Retry-After"]
        failed = [
            line
            for line in (await (await client.get("/metrics")).text()).splitlines()
            if line.startswith('spoc_contacts_total{channel="api",outcome="failed"}')
        ]
        assert failed == ['spoc_contacts_total{channel="api",outcome="failed"} 1.0']
    finally:
        await client.close()


async def test_metrics_expose_every_series_and_count_an_api_contact(gw: Gateway) -> None:
    response = await gw.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    for name in (
        "spoc_contacts_total",
        "spoc_tickets_created_total",
        "spoc_outbox_depth",
        "spoc_delivery_failures_total",
        "spoc_intake_seconds",
    ):
        assert name in text
    assert await gw.metric("spoc_contacts_total", channel="api", outcome="created") == 0

    await gw.new_contact(external_id="metrics-1")
    await gw.post("/api/contacts", contact_body(external_id="metrics-1"))
    await gw.post("/api/contacts", contact_body(**{"from": {}}))

    assert await gw.metric("spoc_contacts_total", channel="api", outcome="created") == 1
    assert await gw.metric("spoc_contacts_total", channel="api", outcome="duplicate") == 1
    assert await gw.metric("spoc_contacts_total", channel="api", outcome="rejected") == 1
    assert await gw.metric("spoc_tickets_created_total", channel="api") == 1
    assert await gw.metric("spoc_intake_seconds_count", channel="api") == 3


# ---- authentication -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer t\u00f6ken"},
    ],
)
async def test_api_calls_without_a_valid_bearer_token_get_401(
    gw: Gateway, headers: dict[str, str]
) -> None:
    await assert_error(await gw.post("/api/contacts", contact_body(), headers=headers), 401)
    await assert_error(await gw.client.get("/api/tickets", headers=headers), 401)
    rows = await gw.store.read(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one()
    )
    assert rows == 0


async def test_without_a_configured_token_every_api_call_is_refused(store: Store) -> None:
    client, _ = await serve(store, api_tokens=())
    try:
        response = await client.get("/api/tickets", headers={"Authorization": "Bearer "})
        await assert_error(response, 401)
        assert "SPOC_API_TOKEN" in (await response.json())["error"]
    finally:
        await client.close()


async def test_a_disabled_api_answers_404(store: Store) -> None:
    client, _ = await serve(store, api_enabled=False)
    try:
        await assert_error(await client.get("/api/tickets", headers=AUTH), 404)
    finally:
        await client.close()


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "content_type", "field"),
    [
        (b"{not json", "application/json", None),
        (b"\xff\xfe\x00garbage", "application/json", None),
        (b"[1, 2]", "application/json", None),
        (b'"just a string"', "application/json", None),
        (json.dumps(contact_body()).encode(), "text/plain", None),
        (json.dumps({"subject": "x", "text": "y"}).encode(), "application/json", "from"),
        (
            json.dumps(contact_body(**{"from": {"phone": "12"}})).encode(),
            "application/json",
            "from.phone",
        ),
        (
            json.dumps(contact_body(**{"from": {"email": "nope"}})).encode(),
            "application/json",
            "from.email",
        ),
        (json.dumps(contact_body(subject=7)).encode(), "application/json", "subject"),
    ],
)
async def test_bad_contact_bodies_get_400_naming_the_field(
    gw: Gateway, data: bytes, content_type: str, field: str | None
) -> None:
    response = await gw.client.post(
        "/api/contacts", data=data, headers={**AUTH, "Content-Type": content_type}
    )
    await assert_error(response, 400, field)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "\uff15"}, "limit"),
        ({"status": "done"}, "status"),
        ({"channel": "fax-machine"}, "channel"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "Zm9v"}, "cursor"),
        ({"q": "x" * 400}, "q"),
        ({"group": "a\x00b"}, "group"),
    ],
)
async def test_bad_list_parameters_get_400_naming_the_field(
    gw: Gateway, params: dict[str, str], field: str
) -> None:
    await assert_error(await gw.get("/api/tickets", **params), 400, field)


async def test_a_body_over_two_megabytes_gets_413(gw: Gateway) -> None:
    big = json.dumps(contact_body(text="x" * (CLIENT_MAX_SIZE + 10))).encode()
    response = await gw.client.post(
        "/api/contacts", data=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    await assert_error(response, 413)


JUNK_BODIES: list[bytes] = [
    b"",
    b"null",
    b"true",
    b"1e999999",
    b"9" * 5000,
    b"[" * 50_000 + b"]" * 50_000,
    b'{"from": ' * 5000 + b"{}" + b"}" * 5000,
    b'{"from": {"email": "\\ud800@example.org"}}',
    b'{"from": {"email": "a@example.org"}, "text": "\\u0000"}',
    b'{"from": {"email": "a@example.org"}, "text": "ok", "external_id": "\\udfff"}',
    b'{"from": [], "text": "x"}',
    b'{"from": {"email": {"$gt": ""}}, "text": "x"}',
    b'{"from": {"phone": "+1" }, "text": "x"}',
    b'{"from": {"phone": "anonymous"}, "text": "x"}',
    b'{"from": {"email": "a@example.org"}, "subject": null, "text": 1.5}',
    b'{"from": {"email": "a@example.org"}, "text": "x", "category": ["a"]}',
    b'{"from": {"email": "a@example.org"}, "text": "x", "": 1}',
    b'{"text": "x", "reason": "", "group": 12}',
    '{"from": {"email": "\u00e4@b\u00fccher.example"}, "text": "\u2603"}'.encode("utf-16"),
    b"\x00\x01\x02",
]


async def test_no_junk_body_on_any_api_route_gets_a_500(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    ref = ticket["ref"]
    paths = ["/api/contacts", f"/api/tickets/{ref}/reply", f"/api/tickets/{ref}/escalate"]
    content_types = ["application/json", "application/json; charset=bogus", "text/plain"]
    for path in paths:
        for body in JUNK_BODIES:
            for ctype in content_types:
                response = await gw.client.post(
                    path, data=body, headers={**AUTH, "Content-Type": ctype}
                )
                assert response.status < 500, (path, body[:60], ctype, await response.text())
                if response.status >= 400:
                    await assert_error(response, response.status)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tickets/SD-999999999999999999"),
        ("GET", "/api/tickets/SD-9999999999999999999999"),
        ("GET", "/api/tickets/XX-1"),
        ("GET", "/api/tickets/SD-0"),
        ("GET", "/api/tickets/%00"),
        ("GET", "/api/tickets/" + "A" * 5000),
        ("GET", "/api/tickets?q=%25_%00&requester=%FF"),
        ("GET", "/api/tickets?cursor=" + "A" * 5000),
        ("GET", "/api/tickets?limit=1&limit=2"),
        ("GET", "/api/nothing-here"),
        ("GET", "/no/such/page"),
        ("PUT", "/api/contacts"),
        ("DELETE", "/api/tickets/SD-1"),
        ("POST", "/healthz"),
        ("POST", "/api/tickets/SD-1"),
    ],
)
async def test_odd_paths_and_methods_answer_json_errors_not_500(
    gw: Gateway, method: str, path: str
) -> None:
    response = await gw.client.request(method, path, headers=AUTH)
    assert 400 <= response.status < 500, await response.text()
    await assert_error(response, response.status)


# ---- creating contacts ----------------------------------------------------------------------
async def test_posting_a_contact_creates_a_ticket_in_the_contract_shape(gw: Gateway) -> None:
    response = await gw.post(
        "/api/contacts",
        contact_body(
            **{"from": {"email": "Carol@Example.org", "phone": "+1 415 555 2671", "name": "Carol"}},
            category="broken_device",
            external_id="form-42",
        ),
    )
    assert response.status == 201, await response.text()
    ticket = await response.json()
    assert response.headers["Location"] == f"/api/tickets/{ticket['ref']}"
    assert TICKET_KEYS <= ticket.keys()
    assert REQUESTER_KEYS <= ticket["requester"].keys()
    assert ticket["ref"].startswith("SD-")
    assert ticket["channel"] == "api"
    assert ticket["status"] == "new"
    assert ticket["category"] == "broken_device"
    assert ticket["owner"] == "service-desk"
    assert ticket["requester"]["email"] == "carol@example.org"
    # A phone typed next to an email is not vouched for: kept out of the requester, noted.
    assert ticket["requester"]["phone"] is None
    assert ticket["events"][-1]["detail"]["unverified_identities"] == ["phone"]
    [contact] = ticket["contacts"]
    assert CONTACT_KEYS <= contact.keys()
    assert contact["external_id"] == "form-42"
    assert contact["text"] == "Floor 3, next to the kitchen."
    assert ticket["events"] and {"at", "type", "detail"} <= ticket["events"][0].keys()

    shown = await gw.get(f"/api/tickets/{ticket['ref']}")
    assert shown.status == 200
    assert await shown.json() == ticket


async def test_a_retry_with_the_same_external_id_returns_the_same_ticket(gw: Gateway) -> None:
    first = await gw.new_contact(external_id="retry-me")
    again = await gw.post("/api/contacts", contact_body(external_id="retry-me"))
    assert again.status == 200
    second = await again.json()
    assert second["ref"] == first["ref"]
    assert len(second["contacts"]) == 1
    stored = await gw.store.read(
        lambda c: c.execute(
            sa.select(sa.func.count())
            .select_from(contacts)
            .where(contacts.c.external_id == "retry-me")
        ).scalar_one()
    )
    assert stored == 1


async def test_a_retry_written_differently_but_saying_the_same_is_still_a_retry(
    gw: Gateway,
) -> None:
    first = await gw.new_contact(external_id="same-words", category="printer")
    body = {
        "external_id": "same-words",
        "category": "printer",
        "text": "Floor 3, next to the kitchen.",
        "subject": "Printer on fire",
        "from": {"name": "Alice", "email": "ALICE@example.org"},
    }
    again = await gw.client.post(
        "/api/contacts",
        data=json.dumps(body, indent=2).encode(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert again.status == 200, await again.text()
    assert (await again.json())["ref"] == first["ref"]


async def stored_texts(gw: Gateway, external_id: str) -> list[str]:
    return await gw.store.read(
        lambda c: list(
            c.execute(sa.select(contacts.c.text).where(contacts.c.external_id == external_id))
            .scalars()
            .all()
        )
    )


@pytest.mark.parametrize(
    "change",
    [
        {"text": "Floor 4 now, and it spreads."},
        {"subject": "Printer still on fire"},
        {"category": "network"},
        {"from": {"email": "alice@example.org", "name": "Alice", "phone": "+14155552671"}},
        {"from": {"email": "mallory@example.org", "name": "Alice"}},
    ],
)
async def test_the_same_external_id_with_other_content_gets_409_and_stores_nothing(
    gw: Gateway, change: dict[str, Any]
) -> None:
    first = await gw.new_contact(external_id="form-7", category="printer")
    response = await gw.post(
        "/api/contacts", contact_body(**{"external_id": "form-7", "category": "printer"} | change)
    )
    await assert_error(response, 409, "external_id")
    assert await stored_texts(gw, "form-7") == [first["contacts"][0]["text"]]
    shown = await (await gw.get(f"/api/tickets/{first['ref']}")).json()
    assert len(shown["contacts"]) == 1


async def test_posts_without_external_id_are_separate_contacts(gw: Gateway) -> None:
    first = await gw.new_contact(**{"from": {"email": "dan@example.org"}})
    second = await gw.new_contact(**{"from": {"email": "erin@example.org"}})
    assert first["ref"] != second["ref"]


async def test_nul_and_control_characters_are_removed_from_api_text_not_refused(
    gw: Gateway,
) -> None:
    ticket = await gw.new_contact(text="Floor 3\x00 is\x1b[31m dark\r\n\tsee photo\x7f")
    assert ticket["contacts"][0]["text"] == "Floor 3 is[31m dark\n\tsee photo"
    path = f"/api/tickets/{ticket['ref']}"
    escalated = await gw.post(f"{path}/escalate", {"reason": "needs\x00 L2\x08"})
    assert escalated.status == 200, await escalated.text()
    [event] = [e for e in (await escalated.json())["events"] if e["type"] == "escalated"]
    assert event["detail"]["reason"] == "needs L2"
    replied = await gw.post(f"{path}/reply", {"text": "On\x00 it"})
    assert replied.status == 202, await replied.text()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (contact_body(subject="Printer\x00 on fire"), "subject"),
        (contact_body(**{"from": {"email": "a@example.org", "name": "A\x1b[2JB"}}), "from.name"),
        (contact_body(category="printer\x00"), "category"),
    ],
)
async def test_one_line_fields_with_control_characters_get_400_naming_the_field(
    gw: Gateway, body: dict[str, Any], field: str
) -> None:
    await assert_error(await gw.post("/api/contacts", body), 400, field)


async def test_a_ref_with_fullwidth_digits_in_the_path_is_no_ticket(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    assert ticket["ref"] == "SD-1"
    assert (await gw.get("/api/tickets/SD-1")).status == 200
    for ref in ("SD-\uff11", "SD-\u0967"):  # fullwidth 1, Devanagari 1
        await assert_error(await gw.get(f"/api/tickets/{ref}"), 404, "ref")
        forged = await gw.post(f"/api/tickets/{ref}/escalate", {"reason": "x"})
        await assert_error(forged, 404, "ref")
    shown = await (await gw.get("/api/tickets/SD-1")).json()
    assert shown["group"] == "service-desk"


# ---- listing --------------------------------------------------------------------------------
async def test_listing_is_newest_first_and_pages_with_the_cursor(gw: Gateway) -> None:
    made = [
        (await gw.new_contact(**{"from": {"email": f"user{i}@example.org"}}, subject=f"Issue {i}"))[
            "ref"
        ]
        for i in range(5)
    ]
    seen: list[str] = []
    pages = 0
    params = {"limit": "2"}
    while True:
        response = await gw.get("/api/tickets", **params)
        assert response.status == 200
        page = await response.json()
        pages += 1
        for item in page["tickets"]:
            assert SUMMARY_KEYS <= item.keys()
        seen += [item["ref"] for item in page["tickets"]]
        if page["next"] is None:
            break
        params = {"limit": "2", "cursor": page["next"]}
    assert pages == 3
    assert seen == list(reversed(made))


async def test_the_default_listing_without_parameters_returns_everything_up_to_50(
    gw: Gateway,
) -> None:
    await gw.new_contact()
    response = await gw.get("/api/tickets")
    page = await response.json()
    assert len(page["tickets"]) == 1
    assert page["next"] is None


async def test_listing_filters_by_status_channel_group_requester_and_text(gw: Gateway) -> None:
    printer = await gw.new_contact(**{"from": {"email": "fay@example.org"}}, subject="Printer jam")
    vpn = await gw.new_contact(**{"from": {"phone": "+14155552671"}}, subject="VPN is down")
    await gw.post(f"/api/tickets/{vpn['ref']}/escalate", {"reason": "needs L2", "group": "l2-apps"})

    async def refs(**params: str) -> list[str]:
        response = await gw.get("/api/tickets", **params)
        assert response.status == 200, await response.text()
        return [t["ref"] for t in (await response.json())["tickets"]]

    assert await refs(channel="api") == [vpn["ref"], printer["ref"]]
    assert await refs(channel="email") == []
    assert await refs(status="new") == [vpn["ref"], printer["ref"]]
    assert await refs(status="closed") == []
    assert await refs(group="l2-apps") == [vpn["ref"]]
    assert await refs(requester="FAY@example.org") == [printer["ref"]]
    assert await refs(requester="+14155552671") == [vpn["ref"]]
    assert await refs(q="printer") == [printer["ref"]]


# ---- escalate and reply ---------------------------------------------------------------------
async def test_escalate_moves_the_group_up_one_tier_and_keeps_the_owner(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    assert (ticket["group"], ticket["tier"]) == ("service-desk", 1)
    response = await gw.post(f"/api/tickets/{ticket['ref']}/escalate", {"reason": "billing"})
    assert response.status == 200, await response.text()
    escalated = await response.json()
    assert (escalated["group"], escalated["tier"]) == ("customer-support", 1.5)
    assert escalated["owner"] == "service-desk"
    [event] = [e for e in escalated["events"] if e["type"] == "escalated"]
    assert event["detail"]["reason"] == "billing"

    response = await gw.post(
        f"/api/tickets/{ticket['ref']}/escalate", {"reason": "vendor bug", "group": "vendor-acme"}
    )
    assert response.status == 200
    assert (await response.json())["group"] == "vendor-acme"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": 5}, "reason"),
        ({"reason": "x", "group": "no-such-group"}, "group"),
        ({"reason": "x", "group": 3}, "group"),
        ({"reason": "x", "priority": "P1"}, "priority"),
    ],
)
async def test_bad_escalations_get_400_naming_the_field(
    gw: Gateway, body: dict[str, Any], field: str
) -> None:
    ticket = await gw.new_contact()
    await assert_error(await gw.post(f"/api/tickets/{ticket['ref']}/escalate", body), 400, field)


async def test_escalating_or_showing_an_unknown_ref_gets_404(gw: Gateway) -> None:
    await assert_error(await gw.post("/api/tickets/SD-404/escalate", {"reason": "x"}), 404)
    await assert_error(await gw.get("/api/tickets/SD-404"), 404)


async def test_reply_to_an_email_ticket_is_queued(gw: Gateway) -> None:
    result = await gw.router.submit(
        Contact(
            channel=Channel.EMAIL,
            external_id="m1@mail.example.org",
            sender=Party(email="bob@example.org", name="Bob"),
            received_at=datetime.now(UTC),
            subject="VPN broken",
            text="It does not connect.",
            recipients=("servicedesk@example.com",),
            thread=ThreadHints(message_id="m1@mail.example.org"),
        )
    )
    depth_before = await gw.metric("spoc_outbox_depth")
    response = await gw.post(f"/api/tickets/{result.ticket_ref}/reply", {"text": "Try again now."})
    assert response.status == 202, await response.text()
    assert await response.json() == {"status": "queued"}
    assert await gw.metric("spoc_outbox_depth") == depth_before + 1
    ticket = await (await gw.get(f"/api/tickets/{result.ticket_ref}")).json()
    assert [c["direction"] for c in ticket["contacts"]] == ["in", "out"]


async def test_reply_to_an_api_ticket_goes_to_the_requesters_email(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    response = await gw.post(f"/api/tickets/{ticket['ref']}/reply", {"text": "Hello"})
    assert response.status == 202, await response.text()
    shown = await (await gw.get(f"/api/tickets/{ticket['ref']}")).json()
    out = [c for c in shown["contacts"] if c["direction"] == "out"]
    assert out and out[0]["channel"] == "email" and out[0]["to"] == ticket["requester"]["email"]


async def test_reply_where_nothing_can_carry_it_gets_400(gw: Gateway) -> None:
    ticket = await gw.new_contact(**{"from": {"phone": "+14155552671"}})
    response = await gw.post(f"/api/tickets/{ticket['ref']}/reply", {"text": "Hello"})
    await assert_error(response, 400, "channel")


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": 1}, {"txt": "x"}])
async def test_a_reply_without_text_gets_400(gw: Gateway, body: dict[str, Any]) -> None:
    ticket = await gw.new_contact()
    await assert_error(await gw.post(f"/api/tickets/{ticket['ref']}/reply", body), 400)


async def test_reply_to_an_unknown_ref_gets_404(gw: Gateway) -> None:
    await assert_error(await gw.post("/api/tickets/SD-999/reply", {"text": "Hello"}), 404, "ref")


# ---- serving --------------------------------------------------------------------------------
async def test_start_http_serves_on_a_free_port_in_the_running_loop(store: Store) -> None:
    runner = await start_http(api_app(store), "127.0.0.1", 0)
    try:
        port = bound_port(runner)
        assert port > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
    finally:
        await runner.cleanup()


class BrokenTickets:
    """A TicketService whose database raises something nobody expected."""

    settings = SETTINGS

    async def list(self, query: object) -> object:
        raise KeyError("a bug, not bad input")


async def test_an_unexpected_error_answers_json_500_and_is_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    app = build_app(
        store=store,
        tickets=BrokenTickets(),  # type: ignore[arg-type]
        intake=MeteredIntake(Router(store, SETTINGS), metrics),
        metrics=metrics,
        api_tokens=(TOKEN,),
        api_enabled=True,
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get("/api/tickets", headers=AUTH)
        await assert_error(response, 500)
        assert "a bug" not in await response.text()
    [record] = [r for r in caplog.records if r.name == "gateway.http"]
    assert record.exc_info is not None


async def test_status_resolves_a_ticket_and_refuses_bad_values(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    path = f"/api/tickets/{ticket['ref']}/status"
    response = await gw.post(path, {"status": "resolved", "note": "replaced the toner"})
    assert response.status == 200, await response.text()
    shown = await response.json()
    assert shown["status"] == "resolved" and shown["owner"] == "service-desk"
    assert shown["events"][-1]["detail"]["note"] == "replaced the toner"
    await assert_error(await gw.post(path, {"status": "new"}), 400, "status")
    await assert_error(await gw.post(path, {"status": "done"}), 400, "status")
    await assert_error(await gw.post(path, {"status": "closed", "note": 5}), 400, "note")
    await assert_error(await gw.post(path, {"status": "closed", "nope": 1}), 400, "nope")
    await assert_error(await gw.post("/api/tickets/SD-999/status", {"status": "closed"}), 404)
