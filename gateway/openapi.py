"""The OpenAPI 3.1 description of ``/api``, served at ``GET /api/openapi.json``.

The request bodies' schemas are the pydantic models that validate them
(:class:`normalizer.api.ContactBody`, :mod:`gateway.api_bodies`), the answers' are the models of
:mod:`gateway.api_responses`, both through pydantic's JSON Schema generator, so the document
cannot drift from what the handlers accept; the paths, parameters and status codes are
described here, next to each other. ``tests/integration/test_openapi.py`` fails when the API has
a route this document does not describe, and a schemathesis run against a running gateway
checks every answer against it.

The document is built once per process and served behind the API's bearer token (the contract:
"anyone with a token").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import api_responses as r
from gateway.api import DEFAULT_LIMIT, MAX_FILTER_CHARS, MAX_LIMIT
from gateway.api_bodies import EscalateBody, ReplyBody, StatusBody
from gateway.api_outbox import OutboxListParams
from gateway.api_quarantine import DEFAULT_LIMIT as QUARANTINE_DEFAULT_LIMIT
from gateway.api_quarantine import MAX_LIMIT as QUARANTINE_MAX_LIMIT
from gateway.http_budget import CLIENT_MAX_SIZE
from normalizer.api import ContactBody
from normalizer.contact import Channel
from router.quarantine import KINDS as QUARANTINE_KINDS
from router.tickets import STATUSES

PATH: Final = "/openapi.json"  # under /api
REF: Final = "#/components/schemas/{model}"
MAX_ID: Final = 10**18 - 1  # ids and page marks are at most 18 digits (64-bit columns)
TITLE: Final = "spoc REST API"

_BODIES: Final[tuple[type[BaseModel], ...]] = (ContactBody, ReplyBody, EscalateBody, StatusBody)
_ANSWERS: Final[tuple[type[BaseModel], ...]] = (
    r.Error,
    r.Ticket,
    r.TicketPage,
    r.Queued,
    r.OutboxItem,
    r.OutboxPage,
    r.QuarantinePage,
    r.ReplayOutcome,
)


def add_openapi_route(api: web.Application) -> None:
    """Serve the document on the ``/api`` sub-application (bearer token and all)."""
    api.router.add_get(PATH, openapi_json)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(text=_document_text(), content_type="application/json")


@cache
def _document_text() -> str:
    return json.dumps(openapi_document(), ensure_ascii=False)


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, as a JSON-ready dict."""
    _, defs = models_json_schema(
        [(m, "validation") for m in (*_BODIES, *_ANSWERS)], ref_template=REF
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": "1",
            "description": (
                "The service desk's REST API. Every call needs `Authorization: Bearer <token>` "
                '(a token from SPOC_API_TOKEN). Refusals are `{"error", "field"}`.'
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": _shared_responses(),
        },
        "security": [{"bearer": []}],
    }


# ---- paths ----------------------------------------------------------------------------------
def _paths() -> dict[str, Any]:
    ref = _path_param("ref", {"type": "string", "maxLength": 40}, "The ticket's ref.", "SD-1")
    item_id = _path_param(
        "id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "The item's id.", 1
    )
    contact_id = _path_param(
        "id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "The contact's id.", 1
    )
    ticket = _answer("The ticket.", "Ticket")
    conflict = {"409": _shared("Conflict")}
    # (method, path, summary, parameters, body, answers); a path parameter adds the 404.
    operations: list[tuple[str, str, str, list[Any], type[BaseModel] | None, dict[str, Any]]] = [
        ("post", "/api/contacts",
         "Open a ticket (or add to one) with a contact from a web form or another tool",
         [], ContactBody,
         {"201": _answer("The new contact's ticket.", "Ticket", location=True),
          "200": _answer("A retry with a known external_id: the first call's ticket.",
                         "Ticket", location=True),
          **conflict}),
        ("get", "/api/tickets", "List tickets, newest first", _ticket_filters(), None,
         {"200": _answer("One page of ticket summaries.", "TicketPage")}),
        ("get", "/api/tickets/{ref}", "A ticket with its requester, contacts and events",
         [ref], None, {"200": ticket}),
        ("post", "/api/tickets/{ref}/reply",
         "Send text to the requester on the channel they used last (through the outbox)",
         [ref], ReplyBody, {"202": _answer("Queued for delivery.", "Queued")}),
        ("post", "/api/tickets/{ref}/escalate",
         "Move the ticket to a group, or to the next tier up", [ref], EscalateBody,
         {"200": ticket}),
        ("post", "/api/tickets/{ref}/status", "Set the ticket's status", [ref], StatusBody,
         {"200": ticket}),
        ("post", "/api/tickets/{ref}/contacts/{id}/split",
         "Move a contact that was linked onto this ticket to a ticket of its own",
         [ref, contact_id], None,
         {"201": _answer("The new ticket.", "Ticket", location=True), **conflict}),
        ("get", "/api/outbox", "Deliveries waiting or dead-lettered (default), or done",
         _model_query(OutboxListParams), None,
         {"200": _answer("One page of outbox items.", "OutboxPage")}),
        ("post", "/api/outbox/{id}/retry", "Make a delivery due now (a dead one pending again)",
         [item_id], None, {"200": _answer("The item, due now.", "OutboxItem"), **conflict}),
        ("get", "/api/quarantine", "What could not be processed, with its reason, newest first",
         _quarantine_filters(), None,
         {"200": _answer("One page of quarantine items.", "QuarantinePage")}),
        ("post", "/api/quarantine/{id}/replay", "Route a kept message again (idempotent)",
         [item_id], None, {"200": _answer("What the replay did.", "ReplayOutcome")}),
    ]  # fmt: skip
    paths: dict[str, Any] = {}
    for method, path, summary, parameters, body, answers in operations:
        if any(p["in"] == "path" for p in parameters):
            answers = {**answers, "404": _shared("NotFound")}
        if method == "post":  # any body is charged to the server's body budget first
            answers = {**answers, "413": _shared("TooLarge")}
        paths.setdefault(path, {})[method] = _operation(
            summary, answers=answers, parameters=parameters, body=body
        )
    paths["/api/openapi.json"] = {
        "get": _operation(
            "This document",
            answers={
                "200": {
                    "description": "The OpenAPI 3.1 description of /api.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
            refusals=("BadRequest", "Unauthorized"),
        )
    }
    return paths


def _operation(
    summary: str,
    *,
    answers: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    body: type[BaseModel] | None = None,
    refusals: tuple[str, ...] = ("BadRequest", "Unauthorized", "Unavailable"),
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary}
    if parameters:
        operation["parameters"] = parameters
    responses = {**answers}
    for name in refusals:
        responses.setdefault(_STATUS[name], _shared(name))
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=body.__name__)}}},
        }
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _answer(description: str, model: str, *, location: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
    }
    if location:
        answer["headers"] = {
            "Location": {
                "description": "The ticket's URL under /api.",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    return answer


# ---- parameters -----------------------------------------------------------------------------
def _path_param(name: str, schema: dict[str, Any], description: str, example: object) -> Any:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
        "example": example,
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _one_of(values: Iterable[str]) -> dict[str, Any]:
    """A filter taking one of ``values``; empty (``?status=``) is no filter, as when absent."""
    return {"enum": [*values, ""]}


def _ticket_filters() -> list[dict[str, Any]]:
    text = {"type": "string", "maxLength": MAX_FILTER_CHARS}
    return [
        _query("status", _one_of(STATUSES), "Only tickets with this status."),
        _query("channel", _one_of(c.value for c in Channel), "Only tickets opened here."),
        _query("group", text, "Only tickets this [[groups]] name works on."),
        _query("requester", text, "The requester's email, E.164 phone or Slack user id."),
        _query("q", text, "Text in the subject (case-insensitive)."),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Page size.",
        ),
        _query("cursor", {"type": "string", "maxLength": 200}, "A `next` from the page before."),
    ]


def _quarantine_filters() -> list[dict[str, Any]]:
    limit = {
        "type": "integer",
        "minimum": 1,
        "maximum": QUARANTINE_MAX_LIMIT,
        "default": QUARANTINE_DEFAULT_LIMIT,
    }
    return [
        _query("kind", _one_of(QUARANTINE_KINDS), "system or error."),
        _query("limit", limit, "Page size."),
        _query(
            "before",
            {"type": "integer", "minimum": 0, "maximum": MAX_ID},
            "A `next` from the page before.",
        ),
    ]


def _model_query(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query-string model's fields as OpenAPI parameters."""
    schema = model.model_json_schema(ref_template=REF)
    return [
        _query(name, prop, prop.get("description", name))
        for name, prop in schema["properties"].items()
    ]


# ---- refusals -------------------------------------------------------------------------------
_STATUS: Final = {
    "BadRequest": "400",
    "Unauthorized": "401",
    "NotFound": "404",
    "Conflict": "409",
    "TooLarge": "413",
    "Unavailable": "503",
}
_WHY: Final = {
    "BadRequest": "Bad JSON, a wrong Content-Type, or a bad parameter or field (named in field). "
    "A request the HTTP server cannot parse at all (a request line or a header over 8 KiB) is "
    "refused in plain text before it reaches the API.",
    "Unauthorized": "No valid bearer token.",
    "NotFound": "No such ticket or item.",
    "Conflict": "Refused as it stands: an external_id used for other content, or an outbox "
    "item already delivered or being sent.",
    "TooLarge": f"The body is larger than the server takes ({CLIENT_MAX_SIZE} bytes of JSON).",
    "Unavailable": "The store cannot answer now, or the server is receiving too many request "
    "bodies at once (its budget of body bytes in flight is spent; nothing was read or stored); "
    "retry after Retry-After seconds.",
}


def _shared(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _shared_responses() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    responses: dict[str, Any] = {
        name: {"description": why, "content": error} for name, why in _WHY.items()
    }
    responses["BadRequest"]["content"] = {**error, "text/plain": {"schema": {"type": "string"}}}
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
    }
    responses["Unavailable"]["headers"] = {
        "Retry-After": {"required": True, "schema": {"type": "string"}}
    }
    return responses
