"""The REST API under ``/api`` (the contract's "HTTP" table), as an aiohttp sub-application.

Routes: ``POST /api/contacts``, ``GET /api/tickets``, ``GET /api/tickets/{ref}``,
``POST /api/tickets/{ref}/reply``, ``POST /api/tickets/{ref}/escalate``, and (beyond the
contract, which is silent on how a ticket gets resolved) ``POST /api/tickets/{ref}/status``.

Every call needs ``Authorization: Bearer <token>`` matching one of the tokens from
``SPOC_API_TOKEN``; with no token configured every call is refused (401) -- the API never fails
open. Each body is one pydantic model (:class:`normalizer.api.ContactBody`, and
:mod:`gateway.api_bodies` for the agent actions). Errors are JSON ``{"error": "...", "field":
"..."}`` with ``field`` the dotted path of the bad value (``from.email``): 400 for bad JSON, a
wrong content type or invalid fields, 401 without a valid token, 404 for an unknown ref, 409 for
an ``external_id`` already used for other content, 413 for a body over the app's
``client_max_size``, 503 when the store cannot take the contact now or, before the body is read,
when the HTTP server's body budget is spent (:mod:`gateway.http_budget`; retry, both with
``Retry-After``).

Idempotency key: ``external_id`` of ``POST /api/contacts``. A retry with the same one and the
same content (sender, subject, text, category) answers 200 with the ticket of the first call and
stores nothing new; the same one with other content answers 409 and stores nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from channels.http_bodies import add_body_route
from gateway.api_bodies import EscalateBody, ReplyBody, StatusBody
from gateway.api_split import add_split_route
from gateway.auth import BEARER_CHALLENGE, encode_tokens, has_valid_bearer_token
from gateway.metrics import Metrics
from normalizer.api import contact_from_api
from normalizer.bodies import load_body
from normalizer.contact import Channel
from normalizer.intake import (
    ContactRejectedError,
    IdempotencyKeyConflict,
    Intake,
    TemporaryIntakeError,
)
from normalizer.refs import is_ref
from normalizer.text import has_controls
from router.tickets import STATUSES, TicketNotFound, TicketQuery, TicketService

log = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
MAX_FILTER_CHARS: Final = 320
RETRY_AFTER_SECONDS: Final = "5"

TICKETS_KEY: Final = web.AppKey("api_tickets", TicketService)
INTAKE_KEY: Final = web.AppKey("api_intake", Intake)
METRICS_KEY: Final = web.AppKey("api_metrics", Metrics)
TOKENS_KEY: Final = web.AppKey("api_tokens", tuple[bytes, ...])

_DIGITS = re.compile(r"[0-9]{1,6}")
_CURSOR = re.compile(r"[A-Za-z0-9_\-.=:~]{1,200}")
_MAX_REF_CHARS = 40

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class APIError(Exception):
    """An answer other than success, raised anywhere in a handler, rendered by the middleware."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def build_api_app(
    *,
    tickets: TicketService,
    intake: Intake,
    metrics: Metrics,
    api_tokens: tuple[str, ...],
) -> web.Application:
    """The ``/api`` sub-application; mount it with ``app.add_subapp("/api", ...)``."""
    app = web.Application(middlewares=[_api_errors, _require_bearer_token])
    app[TICKETS_KEY] = tickets
    app[INTAKE_KEY] = intake
    app[METRICS_KEY] = metrics
    app[TOKENS_KEY] = encode_tokens(api_tokens)
    add_body_route(app, "/contacts", post_contact)
    app.router.add_get("/tickets", list_tickets)
    app.router.add_get("/tickets/{ref}", get_ticket)
    add_body_route(app, "/tickets/{ref}/reply", reply_to_ticket)
    add_body_route(app, "/tickets/{ref}/escalate", escalate_ticket)
    add_body_route(app, "/tickets/{ref}/status", set_ticket_status)
    add_split_route(app, tickets)  # gateway/api_split.py
    return app


def json_response(data: object, status: int = 200, **kwargs: Any) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps, **kwargs)


def error_response(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return json_response(body, status=status, headers=headers)


# ---- middlewares ----------------------------------------------------------------------------
@web.middleware
async def _api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed errors -> their HTTP answer. Logged once, here, without bodies."""
    try:
        return await handler(request)
    except APIError as exc:
        return error_response(exc.status, exc.message, exc.field)
    except IdempotencyKeyConflict as exc:
        log.info("api %s %s refused: %s", request.method, request.path, exc)
        return error_response(409, str(exc), exc.field)
    except ContactRejectedError as exc:
        log.info("api %s %s refused: %s (field %s)", request.method, request.path, exc, exc.field)
        return error_response(400, str(exc), exc.field)
    except TicketNotFound:
        return error_response(404, "no such ticket", "ref")
    except TemporaryIntakeError as exc:
        log.warning("api %s %s: store unavailable: %s", request.method, request.path, exc)
        return error_response(
            503,
            "the service desk cannot take this now; retry later",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )


@web.middleware
async def _require_bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    tokens: tuple[bytes, ...] = request.app[TOKENS_KEY]
    if not tokens:
        return error_response(
            401, "the API has no token configured: set SPOC_API_TOKEN", headers=BEARER_CHALLENGE
        )
    if not has_valid_bearer_token(request, tokens):
        return error_response(401, "missing or invalid bearer token", headers=BEARER_CHALLENGE)
    return await handler(request)


# ---- handlers -------------------------------------------------------------------------------
async def post_contact(request: web.Request) -> web.Response:
    received_at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        contact = contact_from_api(await _json_body(request), received_at=received_at)
    except (APIError, ContactRejectedError) as exc:
        if getattr(exc, "status", 400) == 400:
            request.app[METRICS_KEY].observe_intake(
                Channel.API.value, "rejected", time.perf_counter() - started
            )
        raise
    result = await request.app[INTAKE_KEY].submit(contact)
    ticket = await request.app[TICKETS_KEY].get(result.ticket_ref)
    log.info(
        "api contact %s -> %s (%s)",
        contact.external_id,
        result.ticket_ref,
        "duplicate" if result.duplicate else "stored",
    )
    return json_response(
        ticket,
        status=200 if result.duplicate else 201,
        headers={"Location": f"/api/tickets/{result.ticket_ref}"},
    )


async def list_tickets(request: web.Request) -> web.Response:
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            raise APIError(400, f"{name[:64]} is given more than once", name[:64])
    query = ticket_query_from(request.query)
    try:
        page = await request.app[TICKETS_KEY].list(query)
    except ValueError as exc:  # a cursor that decodes but does not make sense
        raise APIError(400, f"invalid cursor: {exc}", "cursor") from exc
    return json_response({"tickets": page.items, "next": page.next})


async def get_ticket(request: web.Request) -> web.Response:
    ref = _ref(request)
    return json_response(await request.app[TICKETS_KEY].get(ref))


async def reply_to_ticket(request: web.Request) -> web.Response:
    ref = _ref(request)
    body = load_body(ReplyBody, await _json_body(request))
    await request.app[TICKETS_KEY].reply(ref, body.text)
    log.info("api reply queued for %s", ref)
    return json_response({"status": "queued"}, status=202)


async def escalate_ticket(request: web.Request) -> web.Response:
    ref = _ref(request)
    body = load_body(EscalateBody, await _json_body(request))
    group = body.group.strip() if body.group is not None else None
    ticket = await request.app[TICKETS_KEY].escalate(ref, body.reason.strip(), group=group)
    log.info("api escalated %s to %s", ref, ticket.get("group"))
    return json_response(ticket)


async def set_ticket_status(request: web.Request) -> web.Response:
    """``{"status": "pending" | "resolved" | "closed" | "open", "note"?}``: 200 with the ticket."""
    ref = _ref(request)
    body = load_body(StatusBody, await _json_body(request))
    ticket = await request.app[TICKETS_KEY].set_status(ref, body.status, body.note.strip())
    log.info("api set %s to %s", ref, body.status)
    return json_response(ticket)


# ---- input checks ---------------------------------------------------------------------------
def ticket_query_from(params: Mapping[str, str]) -> TicketQuery:
    """The query string of ``GET /api/tickets`` as a :class:`TicketQuery`; APIError when bad."""
    status = _filter(params, "status")
    if status is not None and status not in STATUSES:
        raise APIError(400, f"status must be one of {', '.join(STATUSES)}", "status")
    channel = _filter(params, "channel")
    if channel is not None and channel not in {c.value for c in Channel}:
        raise APIError(
            400, f"channel must be one of {', '.join(c.value for c in Channel)}", "channel"
        )
    limit = DEFAULT_LIMIT
    if "limit" in params:
        raw = params["limit"]
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            raise APIError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
        limit = int(raw)
    cursor = params.get("cursor") or None
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise APIError(400, "cursor is not one this server gave out", "cursor")
    return TicketQuery(
        status=status,
        channel=channel,
        group=_filter(params, "group"),
        requester=_filter(params, "requester"),
        q=_filter(params, "q"),
        limit=limit,
        cursor=cursor,
    )


def _filter(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_FILTER_CHARS:
        raise APIError(400, f"{name} is longer than {MAX_FILTER_CHARS} characters", name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, f"{name} is not valid Unicode", name) from None
    if has_controls(value):
        raise APIError(400, f"{name} contains control characters", name)
    return value


def _ref(request: web.Request) -> str:
    """The path's ref; one that is not an ASCII ref (``SD-42``) is no ticket's (404)."""
    ref = request.match_info["ref"]
    if not is_ref(ref):
        raise TicketNotFound(ref[:_MAX_REF_CHARS])
    return ref


async def _json_body(request: web.Request) -> bytes:
    """The raw body of a JSON request (the body models parse and validate it)."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise APIError(400, "Content-Type must be application/json")
    return await request.read()  # over client_max_size: HTTPRequestEntityTooLarge (413)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(data: object) -> str:
    return json.dumps(data, default=_json_default, ensure_ascii=False)
