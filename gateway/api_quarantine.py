"""``GET /api/quarantine`` and ``POST /api/quarantine/{id}/replay`` (the contract's HTTP table).

Mounted on the ``/api`` sub-application by :func:`add_quarantine_routes`, so the bearer token
and the JSON errors of :mod:`gateway.api` apply unchanged.

``GET /api/quarantine?kind=system|error&limit=N&before=ID``
    ``{"items": [...], "next": id-or-null}``, newest first; each item has ``id``, ``kind``,
    ``reason``, ``source``, ``raw_type``, ``size``, ``sha256``, ``from``, ``subject``,
    ``received_at``, ``replayed_at``, ``replayed_as``, ``last_replay_error`` (never the raw
    bytes). Pass ``next`` back as ``before`` for the next page.
``POST /api/quarantine/{id}/replay``
    routes the kept mail again (idempotent): 200 ``{"id", "outcome": "stored" | "duplicate" |
    "kept" | "failed", "ticket_ref", "error"}``; 404 ``{"error", "field": "id"}`` for an unknown
    id; 503 when the store cannot take it now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from channels.http_bodies import add_body_route
from gateway.api import APIError, json_response
from normalizer.intake import Intake
from router.quarantine import KINDS, QuarantineItemNotFound, QuarantineStore
from router.settings import RouterSettings
from router.store import Store

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200

QUARANTINE_KEY: Final = web.AppKey("api_quarantine", QuarantineStore)
REPLAY_INTAKE_KEY: Final = web.AppKey("api_quarantine_intake", Intake)
REPLAY_SETTINGS_KEY: Final = web.AppKey("api_quarantine_settings", RouterSettings)

_NUMBER = re.compile(r"[0-9]{1,18}")


def add_quarantine_routes(
    api: web.Application, *, store: Store, intake: Intake, settings: RouterSettings
) -> None:
    """Add the quarantine routes to the ``/api`` sub-application before it is mounted."""
    api[QUARANTINE_KEY] = QuarantineStore(store)
    api[REPLAY_INTAKE_KEY] = intake
    api[REPLAY_SETTINGS_KEY] = settings
    api.router.add_get("/quarantine", list_quarantine)
    add_body_route(api, "/quarantine/{id}/replay", replay_quarantined)


async def list_quarantine(request: web.Request) -> web.Response:
    params = request.query
    for name in params:
        if name not in ("kind", "limit", "before"):
            raise APIError(400, f"unknown parameter {name[:64]}", name[:64])
        if len(params.getall(name)) > 1:
            raise APIError(400, f"{name} is given more than once", name)
    kind = params.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise APIError(400, f"kind must be one of {', '.join(KINDS)}", "kind")
    limit = _number(params, "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise APIError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    before = _number(params, "before", None) if "before" in params else None
    items = await request.app[QUARANTINE_KEY].items(kind=kind, limit=limit, before=before)
    more = len(items) == limit
    return json_response({"items": items, "next": items[-1]["id"] if more else None})


async def replay_quarantined(request: web.Request) -> web.Response:
    raw_id = request.match_info["id"]
    if not _NUMBER.fullmatch(raw_id):
        raise APIError(404, "no such quarantine item", "id")
    app = request.app
    try:
        outcome = await app[QUARANTINE_KEY].replay(
            int(raw_id), app[REPLAY_INTAKE_KEY], app[REPLAY_SETTINGS_KEY]
        )
    except QuarantineItemNotFound:
        raise APIError(404, "no such quarantine item", "id") from None
    return json_response(
        {
            "id": outcome.item_id,
            "outcome": outcome.outcome,
            "ticket_ref": outcome.ticket_ref,
            "error": outcome.error,
        }
    )


def _number(params: Mapping[str, str], name: str, default: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        assert default is not None
        return default
    if not _NUMBER.fullmatch(raw):
        raise APIError(400, f"{name} must be a whole number", name)
    return int(raw)
