"""``GET /api/openapi.json``: served behind the token, valid OpenAPI 3.1, and describing every
``/api`` route the app really has (and none it has not)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from openapi_spec_validator import validate

from gateway.api_responses import Ticket, TicketPage
from gateway.http import build_app
from gateway.metrics import Metrics
from gateway.openapi import openapi_document
from router.router import Router
from router.store import Store
from router.tickets import TicketService
from tests.integration.test_http_api import AUTH, SETTINGS, Gateway, gw, store

__all__ = ["gw", "store"]  # fixtures, used by name

OPERATIONS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def api_routes(app_store: Store) -> set[tuple[str, str]]:
    """Every (method, path template) the running app answers under /api (HEAD rides on GET)."""
    app = build_app(
        store=app_store,
        tickets=TicketService(app_store, SETTINGS),
        intake=Router(app_store, SETTINGS),
        metrics=Metrics(),
        api_tokens=("t",),
        api_enabled=True,
    )
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }


def described(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in OPERATIONS
    }


async def test_every_api_route_is_in_the_openapi_document_and_nothing_else(store: Store) -> None:
    routes = api_routes(store)
    document = openapi_document()
    assert routes - described(document) == set(), "routes the document does not describe"
    assert described(document) - routes == set(), "the document describes routes that don't exist"
    assert len(routes) >= 11


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_operation_answers_401_without_a_token_and_names_its_refusals_as_errors() -> None:
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "401" in operation["responses"], (method, path)
            assert operation["summary"], (method, path)


async def test_the_document_needs_the_bearer_token(gw: Gateway) -> None:
    refused = await gw.client.get("/api/openapi.json")
    assert refused.status == 401
    served = await gw.client.get("/api/openapi.json", headers=AUTH)
    assert served.status == 200 and served.content_type == "application/json"
    assert await served.json() == openapi_document()


async def test_a_ticket_and_a_page_of_tickets_fit_the_documented_shapes(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    Ticket.model_validate(ticket)
    Ticket.model_validate(await (await gw.get(f"/api/tickets/{ticket['ref']}")).json())
    TicketPage.model_validate(await (await gw.get("/api/tickets")).json())


async def test_an_empty_filter_the_api_takes_as_no_filter_is_one_the_document_allows(
    gw: Gateway,
) -> None:
    # schemathesis sent ?kind= (outside the enum) and got 200: the document must say so.
    document = openapi_document()
    for path in ("/api/tickets", "/api/quarantine"):
        for parameter in document["paths"][path]["get"]["parameters"]:
            if "enum" not in parameter["schema"]:
                continue
            name = parameter["name"]
            answer = await gw.client.get(path, params={name: ""}, headers=AUTH)
            assert answer.status == 200, (path, name, await answer.text())
            assert jsonschema_rs.validator_for(parameter["schema"]).is_valid(""), (path, name)


async def test_a_request_line_too_long_to_parse_gets_the_documented_plain_text_400(
    gw: Gateway,
) -> None:
    # schemathesis sent a 10 KB query: aiohttp's parser answers before any middleware can.
    answer = await gw.client.get(f"/api/tickets?q={'a' * 9000}", headers=AUTH)
    assert answer.status == 400
    bad_request = openapi_document()["components"]["responses"]["BadRequest"]
    assert answer.content_type in bad_request["content"]
