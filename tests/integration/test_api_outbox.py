"""``GET /api/outbox``, ``POST /api/outbox/{id}/retry`` and the outbox gauges of ``/metrics``:
a real aiohttp server on 127.0.0.1 over the real Store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway.http import build_app
from gateway.metrics import Metrics
from router.outbox import Outbox, enqueue
from router.router import Router
from router.schema import outbox
from router.settings import Group, RouterSettings
from router.store import Store
from router.tickets import TicketService

TOKEN = "outbox-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETTINGS = RouterSettings(desk_address="servicedesk@example.com", groups=(Group("desk", 1.0),))
ITEM_KEYS = {
    "id", "kind", "status", "ticket_ref", "target", "attempts", "created_at",
    "next_attempt_at", "leased_until", "done_at", "last_error", "idempotency_key",
}  # fmt: skip


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(
        store=store,
        tickets=TicketService(store, SETTINGS),
        intake=Router(store, SETTINGS),
        metrics=Metrics(),
        api_tokens=(TOKEN,),
        api_enabled=True,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    yield client
    await client.close()


def queue(store: Store, n: int, *, created: datetime | None = None) -> None:
    """Row ``n`` (id n on a fresh database) for ticket SD-n."""
    now = created or datetime.now(UTC)
    payload = {"to": f"user{n}@example.org", "text": "secret body", "ticket_ref": f"SD-{n}"}
    store.run_sync(
        lambda c: enqueue(
            c, "email.reply", payload, key=f"reply:{n}", now=now, recipient=f"user{n}@example.org"
        )
    )


async def settle(store: Store, *, dead: bool) -> None:
    """Claim every due row and record it dead, or delivered."""
    box = Outbox(store)
    for item in await box.claim(limit=100):
        if dead:
            assert await box.failed(item, "550 no such user", None)
        else:
            assert await box.done(item)


async def get(client: TestClient[Any, Any], **params: str) -> ClientResponse:
    return await client.get("/api/outbox", params=params, headers=AUTH)


async def error(response: ClientResponse, status: int, field: str | None) -> None:
    assert response.status == status, await response.text()
    body = await response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body.get("field") == field


async def test_outbox_listing_needs_the_bearer_token(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/outbox")).status == 401
    assert (await client.post("/api/outbox/1/retry")).status == 401


async def test_outbox_lists_waiting_and_dead_deliveries_newest_first_without_bodies(
    client: TestClient[Any, Any], store: Store
) -> None:
    queue(store, 1)
    await settle(store, dead=False)  # 1 delivered: not listed
    queue(store, 2)
    await settle(store, dead=True)  # 2 dead
    queue(store, 3)  # 3 waiting

    response = await get(client)
    assert response.status == 200
    body = await response.json()
    assert body["next"] is None
    assert [(i["id"], i["status"]) for i in body["items"]] == [(3, "pending"), (2, "dead")]
    assert all(set(i) == ITEM_KEYS for i in body["items"])
    dead = body["items"][1]
    assert dead["ticket_ref"] == "SD-2" and dead["target"] == "user2@example.org"
    assert dead["last_error"] == "550 no such user" and dead["attempts"] == 1
    assert dead["next_attempt_at"] is None and dead["done_at"]
    assert "secret body" not in await response.text()

    only_dead = await (await get(client, status="dead")).json()
    assert [i["id"] for i in only_dead["items"]] == [2]


async def test_outbox_pages_with_the_cursor_it_gave_out(
    client: TestClient[Any, Any], store: Store
) -> None:
    for n in range(1, 6):
        queue(store, n)
    seen: list[int] = []
    params = {"limit": "2"}
    while True:
        body = await (await get(client, **params)).json()
        seen += [i["id"] for i in body["items"]]
        if body["next"] is None:
            break
        params = {"limit": "2", "cursor": body["next"]}
    assert seen == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "eDEy"}, "cursor"),  # base64 of "x12": decodes, is not ours
    ],
)
async def test_outbox_listing_refuses_bad_parameters_by_name(
    client: TestClient[Any, Any], params: dict[str, str], field: str
) -> None:
    await error(await get(client, **params), 400, field)


async def test_outbox_listing_refuses_a_parameter_given_twice(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/api/outbox?status=dead&status=pending", headers=AUTH)
    await error(response, 400, "status")


async def test_retrying_a_dead_letter_queues_it_again_from_scratch(
    client: TestClient[Any, Any], store: Store
) -> None:
    queue(store, 1, created=datetime.now(UTC) - timedelta(days=6))  # past its lifetime
    await settle(store, dead=True)

    response = await client.post("/api/outbox/1/retry", headers=AUTH)
    assert response.status == 200, await response.text()
    item = await response.json()
    assert (item["id"], item["status"], item["attempts"]) == (1, "pending", 0)
    assert item["last_error"] == "550 no such user"  # kept until the next attempt

    [again] = await Outbox(store).claim()  # the dispatcher takes it on its next round
    assert (again.id, again.attempts) == (1, 1)
    created = store.run_sync(lambda c: c.execute(sa.select(outbox.c.created_at)).scalar_one())
    assert again.queued_at is not None
    assert again.queued_at - created > timedelta(days=5)  # its lifetime starts again


async def test_retrying_an_unknown_item_is_404(client: TestClient[Any, Any]) -> None:
    await error(await client.post("/api/outbox/99/retry", headers=AUTH), 404, "id")
    await error(await client.post("/api/outbox/abc/retry", headers=AUTH), 404, "id")
    await error(await client.post(f"/api/outbox/{'9' * 30}/retry", headers=AUTH), 404, "id")


async def test_retrying_a_delivered_or_in_flight_item_is_refused(
    client: TestClient[Any, Any], store: Store
) -> None:
    queue(store, 1)
    await settle(store, dead=False)
    queue(store, 2)
    await Outbox(store).claim()  # being sent right now

    for item_id in (1, 2):
        await error(await client.post(f"/api/outbox/{item_id}/retry", headers=AUTH), 409, "id")


async def metric(client: TestClient[Any, Any], name: str) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no sample {name}")


async def test_metrics_show_dead_letters_and_the_oldest_waiting_age(
    client: TestClient[Any, Any], store: Store
) -> None:
    assert await metric(client, "spoc_outbox_dead") == 0
    assert await metric(client, "spoc_outbox_oldest_pending_seconds") == 0
    queue(store, 1)
    await settle(store, dead=True)
    queue(store, 2, created=datetime.now(UTC) - timedelta(hours=2))
    queue(store, 3)

    assert await metric(client, "spoc_outbox_dead") == 1
    assert await metric(client, "spoc_outbox_depth") == 2
    age = await metric(client, "spoc_outbox_oldest_pending_seconds")
    assert 7200 <= age < 7200 + 600
