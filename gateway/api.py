"""The REST API under ``/api`` (the contract's "HTTP" table), as an aiohttp sub-application.

Routes: ``POST /api/contacts``, ``GET /api/tickets``, ``GET /api/tickets/{ref}``,
``POST /api/tickets/{ref}/reply``, ``POST /api/tickets/{ref}/escalate``, and (beyond the
contract, which is silent on how a ticket gets resolved) ``POST /api/tickets/{ref}/status``.

Every call needs ``Authorization: Bearer <token>`` matching one of the tokens from
``SPOC_API_TOKEN``; with no token configured every call is refused (401) -- the API never fails
open. Errors are JSON ``{"error": "...", "field": "..."}``: 400 for bad JSON, a wrong content
type or invalid fields, 401 without a valid token, 404 for an unknown ref, 413 for a body over
the app's ``client_max_size``, 503 when the store cannot take the contact now (retry).

Idempotency key: ``external_id`` of ``POST /api/contacts``. A retry with the same one answers
200 with the ticket of the first call and stores nothing new.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from gateway.api_split import add_split_route
from gateway.metrics import Metrics
from normalizer.api import contact_from_api
from normalizer.contact import Channel
from normalizer.intake import ContactRejectedError, Intake, TemporaryIntakeError
from router.tickets import (
    SETTABLE_STATUSES,
    STATUSES,
    TicketNotFound,
    TicketQuery,
    TicketService,
)

log = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
MAX_FILTER_CHARS: Final = 320
MAX_REPLY_BYTES: Final = 1024 * 1024
MAX_REASON_CHARS: Final = 2000
RETRY_AFTER_SECONDS: Final = "5"

TICKETS_KEY: Final = web.AppKey("api_tickets", TicketService)
INTAKE_KEY: Final = web.AppKey("api_intake", Intake)
METRICS_KEY: Final = web.AppKey("api_metrics", Metrics)
TOKENS_KEY: Final = web.AppKey("api_tokens", tuple[bytes, ...])

_DIGITS = re.compile(r"[0-9]{1,6}")
_CURSOR = re.compile(r"[A-Za-z0-9_\-.=:~]{1,200}")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, CR, LF allowed
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
    app[TOKENS_KEY] = tuple(t.encode("utf-8") for t in api_tokens if t)
    app.router.add_post("/contacts", post_contact)
    app.router.add_get("/tickets", list_tickets)
    app.router.add_get("/tickets/{ref}", get_ticket)
    app.router.add_post("/tickets/{ref}/reply", reply_to_ticket)
    app.router.add_post("/tickets/{ref}/escalate", escalate_ticket)
    app.router.add_post("/tickets/{ref}/status", set_ticket_status)
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
    tokens = request.app[TOKENS_KEY]
    challenge = {"WWW-Authenticate": 'Bearer realm="spoc"'}
    if not tokens:
        return error_response(
            401, "the API has no token configured: set SPOC_API_TOKEN", headers=challenge
        )
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    given = credential.strip().encode("utf-8", "replace")
    matched = False
    for token in tokens:  # no early exit: every token is compared every time
        matched |= hmac.compare_digest(given, token)
    if scheme.lower() != "bearer" or not matched:
        return error_response(401, "missing or invalid bearer token", headers=challenge)
    return await handler(request)


# ---- handlers -------------------------------------------------------------------------------
async def post_contact(request: web.Request) -> web.Response:
    received_at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        body, raw = await _json_object(request)
        contact = contact_from_api(body, received_at=received_at, raw=raw)
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
    body, _ = await _json_object(request)
    _refuse_unknown_keys(body, {"text"})
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise APIError(400, "text must be a non-empty string", "text")
    if len(text.encode("utf-8", "replace")) > MAX_REPLY_BYTES:
        raise APIError(400, f"text is longer than {MAX_REPLY_BYTES} bytes", "text")
    _refuse_bad_unicode(text, "text", lines=True)
    await request.app[TICKETS_KEY].reply(ref, text)
    log.info("api reply queued for %s", ref)
    return json_response({"status": "queued"}, status=202)


async def escalate_ticket(request: web.Request) -> web.Response:
    ref = _ref(request)
    body, _ = await _json_object(request)
    _refuse_unknown_keys(body, {"reason", "group"})
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise APIError(400, "reason must be a non-empty string", "reason")
    if len(reason) > MAX_REASON_CHARS:
        raise APIError(400, f"reason is longer than {MAX_REASON_CHARS} characters", "reason")
    _refuse_bad_unicode(reason, "reason", lines=True)
    group = body.get("group")
    if group is not None:
        if not isinstance(group, str) or not group.strip():
            raise APIError(400, "group must be a non-empty string", "group")
        _refuse_bad_unicode(group, "group")
    ticket = await request.app[TICKETS_KEY].escalate(
        ref, reason.strip(), group=group.strip() if isinstance(group, str) else None
    )
    log.info("api escalated %s to %s", ref, ticket.get("group"))
    return json_response(ticket)


async def set_ticket_status(request: web.Request) -> web.Response:
    """``{"status": "pending" | "resolved" | "closed" | "open", "note"?}``: 200 with the ticket."""
    ref = _ref(request)
    body, _ = await _json_object(request)
    _refuse_unknown_keys(body, {"status", "note"})
    status = body.get("status")
    if not isinstance(status, str) or status not in SETTABLE_STATUSES:
        raise APIError(400, f"status must be one of {', '.join(SETTABLE_STATUSES)}", "status")
    note = body.get("note", "")
    if not isinstance(note, str):
        raise APIError(400, "note must be a string", "note")
    if len(note) > MAX_REASON_CHARS:
        raise APIError(400, f"note is longer than {MAX_REASON_CHARS} characters", "note")
    _refuse_bad_unicode(note, "note", lines=True)
    ticket = await request.app[TICKETS_KEY].set_status(ref, status, note.strip())
    log.info("api set %s to %s", ref, status)
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
    _refuse_bad_unicode(value, name)
    return value


def _ref(request: web.Request) -> str:
    ref = request.match_info["ref"]
    if len(ref) > _MAX_REF_CHARS or _CONTROLS.search(ref):
        raise TicketNotFound(ref[:_MAX_REF_CHARS])
    return ref


async def _json_object(request: web.Request) -> tuple[dict[str, object], bytes]:
    """The request body as a JSON object, and its raw bytes."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise APIError(400, "Content-Type must be application/json")
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge (413)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, huge ints
        raise APIError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise APIError(400, "the body must be a JSON object")
    return body, raw


def _refuse_unknown_keys(body: Mapping[str, object], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise APIError(400, f"unknown field {key[:64]}", key[:64])


def _refuse_bad_unicode(value: str, field: str, *, lines: bool = False) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, f"{field} is not valid Unicode", field) from None
    if (_CONTROLS_BUT_LINES if lines else _CONTROLS).search(value):
        raise APIError(400, f"{field} contains control characters", field)


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
