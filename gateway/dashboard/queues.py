"""The operator's pages for what needs a hand: the quarantine and the outbox's dead letters.

``GET /dashboard/quarantine[?kind=system|error&before=ID]`` (newest first, a page at a time),
``GET /dashboard/quarantine/{id}`` (reason, source, the mail's headers -- escaped text, never the
mail rendered), ``POST /dashboard/quarantine/{id}/replay`` (``QuarantineStore.replay`` through
the gateway's intake, as ``POST /api/quarantine/{id}/replay``); ``GET /dashboard/dead-letters
[?cursor=…]``, ``GET /dashboard/dead-letters/{id}``, ``POST /dashboard/dead-letters/{id}/retry``
(``OutboxAdmin.retry``, as ``POST /api/outbox/{id}/retry``). Every POST carries the session's
CSRF token; without a session every page redirects to the login.
"""

from __future__ import annotations

import email.parser
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from aiohttp import web

from channels.http_bodies import add_body_route
from normalizer.intake import Intake, IntakeError
from router.outbox_admin import OutboxAdmin, OutboxItemNotFound, OutboxQuery, OutboxRetryRefused
from router.quarantine import KINDS, QuarantineItemNotFound, QuarantineStore
from router.settings import RouterSettings

if TYPE_CHECKING:
    from gateway.dashboard.session import Operator
    from gateway.dashboard.views import Dashboard

log = logging.getLogger(__name__)

SHOWN_HEADERS: Final = 60
MAX_HEADER_CHARS: Final = 2_000
_ID: Final = "{id:[0-9]{1,18}}"
_NUMBER: Final = re.compile(r"[0-9]{1,18}")
REPLAYED: Final = {
    "stored": "Replayed: the mail is on a ticket now.",
    "duplicate": "Replayed: the mail was on a ticket already.",
    "kept": "Replayed: it still matches no ticket, so it stays here.",
    "failed": "The replay failed: see the last replay error below.",
}
RETRIED: Final = "Queued again: the dispatcher sends it within a few seconds."


@dataclass(frozen=True, slots=True)
class Queues:
    """What the pages act through: the API's own stores, and the gateway's intake for replays."""

    quarantine: QuarantineStore
    outbox: OutboxAdmin
    intake: Intake
    settings: RouterSettings


class PageError(Exception):
    """A page that says what is wrong, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def mail_headers(raw: bytes) -> list[tuple[str, str]]:
    """The first headers of a kept mail, unfolded, as text (the template escapes them)."""
    parsed = email.parser.BytesParser().parsebytes(raw, headersonly=True)
    return [
        (str(key)[:200], " ".join(str(value).split())[:MAX_HEADER_CHARS])
        for key, value in list(parsed.raw_items())[:SHOWN_HEADERS]
    ]


class QueuePages:
    def __init__(self, dashboard: Dashboard, queues: Queues) -> None:
        self._dashboard = dashboard
        self._queues = queues

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/dashboard/quarantine", self.quarantine)
        app.router.add_get(f"/dashboard/quarantine/{_ID}", self.quarantined)
        add_body_route(app, f"/dashboard/quarantine/{_ID}/replay", self.replay)
        app.router.add_get("/dashboard/dead-letters", self.dead_letters)
        app.router.add_get(f"/dashboard/dead-letters/{_ID}", self.dead_letter)
        add_body_route(app, f"/dashboard/dead-letters/{_ID}/retry", self.retry)

    # ---- the quarantine ---------------------------------------------------------------------
    async def quarantine(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind") or None
        before = request.query.get("before") or None

        async def page(operator: Operator) -> web.Response:
            if kind is not None and kind not in KINDS:
                raise PageError(400, f"kind must be one of: {', '.join(KINDS)}.")
            if before is not None and not _NUMBER.fullmatch(before):
                raise PageError(400, "That page link is not valid.")
            size = self._dashboard.settings.page_size
            items = await self._queues.quarantine.items(
                kind=kind, limit=size + 1, before=int(before) if before else None
            )
            next_link = None
            if len(items) > size:
                items = items[:size]
                query = {"kind": kind} if kind else {}
                next_link = "/dashboard/quarantine?" + urlencode(
                    {**query, "before": items[-1]["id"]}
                )
            return self._dashboard.page(
                "quarantine.html",
                operator=operator,
                items=items,
                kind=kind or "",
                kinds=KINDS,
                next_link=next_link,
                first_link=("/dashboard/quarantine" + (f"?kind={kind}" if kind else ""))
                if before
                else None,
            )

        return await self._answer(request, page)

    async def quarantined(self, request: web.Request) -> web.Response:
        item_id = int(request.match_info["id"])

        async def page(operator: Operator) -> web.Response:
            try:
                item = await self._queues.quarantine.get(item_id)
            except QuarantineItemNotFound:
                raise PageError(404, f"There is no quarantine item {item_id}.") from None
            headers = mail_headers(item["raw"]) if item["raw_type"] == "message/rfc822" else []
            return self._dashboard.page(
                "quarantine_item.html",
                operator=operator,
                item=item,
                headers=headers,
                done=REPLAYED.get(request.query.get("done", "")),
            )

        return await self._answer(request, page)

    async def replay(self, request: web.Request) -> web.Response:
        item_id = int(request.match_info["id"])

        async def act(operator: Operator) -> web.Response:
            await self._dashboard.checked_fields(request, operator)
            queues = self._queues
            try:
                outcome = await queues.quarantine.replay(item_id, queues.intake, queues.settings)
            except QuarantineItemNotFound:
                raise PageError(404, f"There is no quarantine item {item_id}.") from None
            log.info("dashboard: quarantine %d replayed (%s)", item_id, outcome.outcome)
            raise web.HTTPSeeOther(f"/dashboard/quarantine/{item_id}?done={outcome.outcome}")

        return await self._answer(request, act)

    # ---- dead letters -----------------------------------------------------------------------
    async def dead_letters(self, request: web.Request) -> web.Response:
        cursor = request.query.get("cursor") or None

        async def page(operator: Operator) -> web.Response:
            try:
                found = await self._queues.outbox.list(
                    OutboxQuery(
                        status="dead", limit=self._dashboard.settings.page_size, cursor=cursor
                    )
                )
            except ValueError:
                raise PageError(400, "That page link is not valid.") from None
            return self._dashboard.page(
                "dead_letters.html",
                operator=operator,
                items=found.items,
                next_link=f"/dashboard/dead-letters?{urlencode({'cursor': found.next})}"
                if found.next
                else None,
                first_link="/dashboard/dead-letters" if cursor else None,
            )

        return await self._answer(request, page)

    async def dead_letter(self, request: web.Request) -> web.Response:
        item_id = int(request.match_info["id"])

        async def page(operator: Operator) -> web.Response:
            try:
                item = await self._queues.outbox.get(item_id)
            except OutboxItemNotFound:
                raise PageError(404, f"There is no outbox item {item_id}.") from None
            return self._dashboard.page(
                "dead_letter.html",
                operator=operator,
                item=item,
                done=RETRIED if request.query.get("done") == "retried" else None,
            )

        return await self._answer(request, page)

    async def retry(self, request: web.Request) -> web.Response:
        item_id = int(request.match_info["id"])

        async def act(operator: Operator) -> web.Response:
            await self._dashboard.checked_fields(request, operator)
            try:
                item = await self._queues.outbox.retry(item_id)
            except OutboxItemNotFound:
                raise PageError(404, f"There is no outbox item {item_id}.") from None
            except OutboxRetryRefused as exc:
                raise PageError(409, f"Not queued again: {exc}.") from None
            log.info("dashboard: outbox %d queued again (%s)", item_id, item["kind"])
            raise web.HTTPSeeOther(f"/dashboard/dead-letters/{item_id}?done=retried")

        return await self._answer(request, act)

    # ---- one way to fail --------------------------------------------------------------------
    async def _answer(
        self, request: web.Request, render: Callable[[Operator], Awaitable[web.Response]]
    ) -> web.Response:
        """``render``'s page for the request's operator; the session is read once, here."""
        operator = await self._dashboard.operator(request)  # no session: to the login, never data
        try:
            return await render(operator)
        except PageError as exc:
            return self._dashboard.message(exc, operator)
        except IntakeError as exc:
            log.warning("dashboard: the store is not answering: %s", exc)
            text = "The ticket store is not answering"
            text += ": nothing was changed." if request.method == "POST" else "."
            error = PageError(503, text)
            return self._dashboard.message(error, operator)
