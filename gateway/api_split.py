"""``POST /api/tickets/{ref}/contacts/{id}/split``: undo a link (``router.linking``).

Moves contact ``id`` of ticket ``ref`` to a new ticket of its own and answers 201 with the new
ticket's JSON (``Location`` names it); both tickets log a ``split`` event. No body is needed.
Errors, as everywhere in ``/api``: 404 ``{"field": "ref"}`` for an unknown ticket, 404
``{"field": "id"}`` for a contact that is not on it (or an id that is no number), 409
``{"field": "id"}`` when it is the ticket's only contact. Bearer token as for all of ``/api``.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from channels.http_bodies import add_body_route
from router.linking import ContactNotOnTicket, OnlyContact
from router.tickets import TicketNotFound, TicketService

_ID = re.compile(r"[0-9]{1,18}")
_MAX_REF_CHARS: Final = 40
SPLIT_TICKETS_KEY: Final = web.AppKey("api_split_tickets", TicketService)


def add_split_route(api: web.Application, tickets: TicketService) -> None:
    """Register the route on the ``/api`` sub-application (behind its token and errors)."""
    api[SPLIT_TICKETS_KEY] = tickets
    add_body_route(api, "/tickets/{ref}/contacts/{id}/split", split_contact)


def _error(status: int, message: str, field: str) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


async def split_contact(request: web.Request) -> web.Response:
    ref, raw_id = request.match_info["ref"], request.match_info["id"]
    if len(ref) > _MAX_REF_CHARS or not ref.isprintable():
        raise TicketNotFound(ref[:_MAX_REF_CHARS])
    if not _ID.fullmatch(raw_id):
        return _error(404, "no such contact on this ticket", "id")
    try:
        ticket = await request.app[SPLIT_TICKETS_KEY].split(ref, int(raw_id))
    except ContactNotOnTicket:
        return _error(404, "no such contact on this ticket", "id")
    except OnlyContact:
        return _error(409, "this is the ticket's only contact; there is nothing to split", "id")
    return web.json_response(
        ticket, status=201, headers={"Location": f"/api/tickets/{ticket['ref']}"}
    )
