"""``GET /api/outbox`` and ``POST /api/outbox/{id}/retry``: deliveries waiting or dead-lettered.

Added onto the ``/api`` sub-application (:func:`add_outbox_routes`), so the bearer token and
the JSON error answers are the rest of the API's.

``GET /api/outbox``
    ``{"items": [<outbox item JSON>, …], "next": cursor-or-null}``, newest first (item shape in
    ``router.outbox_admin``). Query: ``status`` (``pending``, ``dead`` or ``done``; default
    pending and dead), ``limit`` 1 to 200 (default 50), ``cursor`` (a ``next`` from before).
``POST /api/outbox/{id}/retry``
    Makes the row due now (a dead one pending again, attempts and lifetime starting over):
    200 with the item. 404 for an unknown id, 409 when it was delivered already or is being
    sent this moment.

Errors are ``{"error": "...", "field": "..."}``; a parameter given twice, an unknown status,
a bad limit or a cursor this server did not give out: 400.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from channels.http_bodies import add_body_route
from gateway.api import error_response, json_response
from router.outbox_admin import (
    OutboxAdmin,
    OutboxItemNotFound,
    OutboxQuery,
    OutboxRetryRefused,
)

log = logging.getLogger(__name__)

ADMIN_KEY: Final = web.AppKey("api_outbox", OutboxAdmin)
_ID = re.compile(r"[0-9]{1,18}")


class OutboxListParams(BaseModel):
    """The query string of ``GET /api/outbox``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["pending", "dead", "done"] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.=:~]{1,200}$")] | None = None


def add_outbox_routes(api: web.Application, admin: OutboxAdmin) -> None:
    """Register the outbox endpoints on the ``/api`` sub-application ``api``."""
    api[ADMIN_KEY] = admin
    api.router.add_get("/outbox", list_outbox)
    add_body_route(api, "/outbox/{id}/retry", retry_outbox_item)


async def list_outbox(request: web.Request) -> web.Response:
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            return error_response(400, f"{name[:64]} is given more than once", name[:64])
    try:
        params = OutboxListParams.model_validate(dict(request.query))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        return error_response(400, f"{field}: {first['msg']}", field)
    query = OutboxQuery(status=params.status, limit=params.limit, cursor=params.cursor)
    try:
        page = await request.app[ADMIN_KEY].list(query)
    except ValueError:
        return error_response(400, "cursor is not one this server gave out", "cursor")
    return json_response({"items": page.items, "next": page.next})


async def retry_outbox_item(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not _ID.fullmatch(raw):
        return error_response(404, "no such outbox item", "id")
    try:
        item = await request.app[ADMIN_KEY].retry(int(raw))
    except OutboxItemNotFound:
        return error_response(404, "no such outbox item", "id")
    except OutboxRetryRefused as exc:
        return error_response(409, str(exc), "id")
    log.info("api: outbox %s queued again (%s)", raw, item["kind"])
    return json_response(item)
