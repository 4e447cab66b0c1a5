"""The dashboard's handlers: login, overview and queue, ticket timeline, operator actions."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

from aiohttp import web
from markupsafe import Markup

from channels.forms import FormGuard, FormRefused, html_templates
from channels.http_bodies import add_body_route
from gateway.dashboard.chart import stacked_bars
from gateway.dashboard.queues import PageError, QueuePages, Queues
from gateway.dashboard.session import Operator, Sessions
from gateway.dashboard.timeline import timeline
from normalizer.intake import ContactRejectedError, IntakeError
from normalizer.refs import parse_ref
from router.stats import Stats
from router.tickets import (
    CHANNELS,
    SETTABLE_STATUSES,
    STATUSES,
    TicketNotFound,
    TicketQuery,
    TicketService,
)

log = logging.getLogger(__name__)

LOGIN_PATH: Final = "/dashboard/login"
MAX_FILTER_CHARS: Final = 200
MAX_REPLY_CHARS: Final = 100_000
MAX_NOTE_CHARS: Final = 2_000
FILTERS: Final = ("status", "channel", "group", "category", "requester", "q")
DONE_MESSAGES: Final = {
    "replied": "Reply queued: it goes out through the outbox.",
    "escalated": "Ticket escalated.",
    "status": "Status changed.",
}
_URL = re.compile(r"https?://[^\s<>\"']+")
_LINK = Markup('<a href="{0}" rel="noopener noreferrer nofollow">{0}</a>')


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    page_size: int = 25
    secure_cookies: bool = False  # public_base_url is https
    groups: tuple[str, ...] = ()


def linkify(text: str) -> Markup:
    """Escape ``text`` and turn http(s) URLs into links that leak nothing (recordings,
    Slack permalinks)."""
    out = Markup("")
    last = 0
    for match in _URL.finditer(text):
        out += text[last : match.start()]  # Markup + str escapes the str
        out += _LINK.format(match.group(0))
        last = match.end()
    return out + text[last:]


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class Dashboard:
    def __init__(
        self,
        settings: DashboardSettings,
        sessions: Sessions,
        tickets: TicketService,
        stats: Stats,
        clock: Callable[[], datetime] | None = None,
        queues: Queues | None = None,
    ) -> None:
        self.settings = settings
        self.queues = queues
        self.sessions = sessions
        self.tickets = tickets
        self.stats = stats
        self._now = clock or (lambda: datetime.now(UTC))
        self._login_forms = FormGuard(
            sessions.form_secret, salt="spoc.dashboard.login", max_age_seconds=3600
        )
        self._templates = html_templates("gateway.dashboard")
        self._templates.filters["linkify"] = linkify
        self._templates.filters["when"] = _when

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.overview)
        app.router.add_get(LOGIN_PATH, self.login_page)
        add_body_route(app, LOGIN_PATH, self.login)
        app.router.add_get(LOGIN_PATH + "/link/{token}", self.login_link)
        add_body_route(app, "/dashboard/logout", self.logout)
        app.router.add_get("/dashboard/tickets/{ref}", self.ticket)
        app.router.add_get(
            "/dashboard/contacts/{contact_id:[0-9]{1,18}}/files/{sha256:[0-9a-f]{64}}", self.file
        )
        add_body_route(app, "/dashboard/tickets/{ref}/reply", self.reply)
        add_body_route(app, "/dashboard/tickets/{ref}/escalate", self.escalate)
        add_body_route(app, "/dashboard/tickets/{ref}/status", self.set_status)
        if self.queues is not None:
            QueuePages(self, self.queues).add_routes(app)
        app.router.add_static("/dashboard/static", str(Path(__file__).parent / "static"))

    # ---- sessions ---------------------------------------------------------------------------
    def _secure(self, request: web.Request) -> bool:
        return self.settings.secure_cookies or request.secure

    async def session(self, request: web.Request) -> Operator | None:
        """The request's session, or None; 503 while the store does not answer (a logout is
        kept there, so a session cannot be trusted without it)."""
        try:
            return await self.sessions.read(request)
        except IntakeError as exc:
            log.warning("dashboard: cannot check the session: %s", exc)
            raise web.HTTPServiceUnavailable(text="The ticket store is not answering.") from exc

    async def operator(self, request: web.Request) -> Operator:
        operator = await self.session(request)
        if operator is None:
            target = request.path_qs if request.method == "GET" else "/"
            raise web.HTTPSeeOther(f"{LOGIN_PATH}?{urlencode({'next': target})}")
        return operator

    async def checked_form(self, request: web.Request) -> tuple[Operator, Mapping[str, str]]:
        """The session and the posted fields, once the form's CSRF token matches."""
        operator = await self.operator(request)
        return operator, await self.checked_fields(request, operator)

    async def checked_fields(self, request: web.Request, operator: Operator) -> Mapping[str, str]:
        """The posted fields, once the form's CSRF token matches ``operator``'s session."""
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        given = form.get("csrf", "")
        if not hmac.compare_digest(given.encode(), operator.csrf.encode()):
            raise PageError(403, "This form has no valid security token: reload the page.")
        return form

    async def login_page(self, request: web.Request) -> web.Response:
        if await self.session(request) is not None:
            raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
        return self._login(request, error=None, status=200)

    def _login(self, request: web.Request, *, error: str | None, status: int) -> web.Response:
        issued = self._login_forms.issue(request)
        response = self.page(
            "login.html",
            status=status,
            operator=None,
            error=error,
            csrf=issued.token,
            next=_safe_next(request.query.get("next")),
            can_log_in=self.sessions.can_log_in,
        )
        self._login_forms.attach(response, issued, secure=self._secure(request))
        return response

    async def login(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        try:
            self._login_forms.check(request, form.get("csrf"))
        except FormRefused as exc:
            return self._login(request, error=str(exc), status=403)
        client = request.remote or "unknown"
        try:
            if await self.sessions.locked_out(client):
                error = "Too many failed logins: wait a while."
                return self._login(request, error=error, status=429)
            operator = await self.sessions.login(form.get("credential", ""), client)
        except IntakeError as exc:
            log.warning("dashboard: cannot check a login now: %s", exc)
            error = "The ticket store is not answering: try again shortly."
            return self._login(request, error=error, status=503)
        if operator is None:
            return self._login(request, error="That is not a valid token or password.", status=401)
        response = web.HTTPSeeOther(_safe_next(form.get("next")))
        self.sessions.start(response, operator, secure=self._secure(request))
        raise response

    async def login_link(self, request: web.Request) -> web.Response:
        operator = self.sessions.spend_link(request.match_info["token"])
        if operator is None:
            return self._login(
                request, error="This login link is not valid or was used already.", status=401
            )
        response = web.HTTPSeeOther("/")
        self.sessions.start(response, operator, secure=self._secure(request))
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        try:
            operator, _ = await self.checked_form(request)
        except PageError as exc:
            return self.message(exc, None)
        response = web.HTTPSeeOther(LOGIN_PATH)
        try:
            await self.sessions.end(response, operator)
        except IntakeError as exc:
            log.warning("dashboard: a logout could not be recorded: %s", exc)
            return self.message(PageError(503, "The ticket store is not answering."), operator)
        log.info("dashboard: an operator logged out")
        raise response

    # ---- pages ------------------------------------------------------------------------------
    async def overview(self, request: web.Request) -> web.Response:
        operator = await self.operator(request)
        filters = {k: request.query.get(k, "").strip()[:MAX_FILTER_CHARS] for k in FILTERS}
        cursor = request.query.get("cursor") or None
        now = self._now()
        try:
            page = await self.tickets.list(
                TicketQuery(
                    **{k: v or None for k, v in filters.items()},
                    limit=self.settings.page_size,
                    cursor=cursor,
                )
            )
            day = await self.stats.intake(now, timedelta(hours=1), 24)
            week = await self.stats.intake(now, timedelta(days=1), 7)
            acks_week = await self.stats.acks(now - timedelta(days=7))
            quarantined = await self.stats.quarantined(now - timedelta(days=7))
            facets = await self.stats.facets()
            dead = await self.stats.dead_letters(limit=20)
        except ValueError:
            return self.message(PageError(400, "That page link is not valid."), operator)
        except IntakeError as exc:
            log.warning("dashboard: the ticket store is not answering: %s", exc)
            return self.message(PageError(503, "The ticket store is not answering."), operator)
        channels = sorted(
            set(day.counts) | set(week.counts) | set(acks_week.tickets) | set(quarantined)
        )
        next_link = None
        if page.next:
            next_link = "/?" + urlencode(
                {**{k: v for k, v in filters.items() if v}, "cursor": page.next}
            )
        return self.page(
            "overview.html",
            operator=operator,
            filters=filters,
            page=page,
            next_link=next_link,
            first_link="/?" + urlencode({k: v for k, v in filters.items() if v})
            if cursor
            else None,
            day=day,
            week=week,
            charts=(stacked_bars("Last 24 hours", day), stacked_bars("Last 7 days", week)),
            acks=acks_week,
            channels=channels,
            facets=facets,
            statuses=STATUSES,
            all_channels=CHANNELS,
            groups=self.settings.groups,
            dead=dead,
            quarantined=quarantined,
            queue_pages=self.queues is not None,
        )

    async def ticket(self, request: web.Request) -> web.Response:
        operator = await self.operator(request)
        return await self._ticket_page(request, operator, error=None, status=200)

    async def _ticket_page(
        self, request: web.Request, operator: Operator, *, error: str | None, status: int
    ) -> web.Response:
        ref = request.match_info["ref"]
        try:
            data = await self.tickets.get(ref)
            ticket_id = parse_ref(self.tickets.settings.ticket_prefix, data["ref"])
            assert ticket_id is not None
            deliveries = await self.stats.deliveries(ticket_id)
            messages = await self.stats.messages(ticket_id)
        except TicketNotFound:
            return self.message(PageError(404, f"There is no ticket {ref[:40]}."), operator)
        except IntakeError as exc:
            log.warning("dashboard: the ticket store is not answering: %s", exc)
            return self.message(PageError(503, "The ticket store is not answering."), operator)
        return self.page(
            "ticket.html",
            status=status,
            operator=operator,
            ticket=data,
            entries=timeline(data, deliveries, messages),
            error=error,
            done=DONE_MESSAGES.get(request.query.get("done", "")),
            groups=self.settings.groups,
            statuses=SETTABLE_STATUSES,
        )

    async def file(self, request: web.Request) -> web.StreamResponse:
        """An attachment (a screenshot, a downloaded call recording), always as a download:
        never shown inline, so an HTML or SVG file cannot run in the dashboard's origin."""
        operator = await self.operator(request)
        contact_id, sha256 = int(request.match_info["contact_id"]), request.match_info["sha256"]
        try:
            found = await self.stats.attachment(contact_id, sha256)
        except IntakeError as exc:
            log.warning("dashboard: the ticket store is not answering: %s", exc)
            return self.message(PageError(503, "The ticket store is not answering."), operator)
        if found is None:
            return self.message(PageError(404, "There is no such file."), operator)
        filename, data = found
        response = web.Response(body=data, content_type="application/octet-stream")
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    # ---- actions (the API's code paths) -----------------------------------------------------
    async def reply(self, request: web.Request) -> web.Response:
        return await self._act(request, "replied", self._reply)

    async def escalate(self, request: web.Request) -> web.Response:
        return await self._act(request, "escalated", self._escalate)

    async def set_status(self, request: web.Request) -> web.Response:
        return await self._act(request, "status", self._set_status)

    async def _reply(self, ref: str, form: Mapping[str, str]) -> None:
        text = form.get("text", "")
        if not text.strip():
            raise ContactRejectedError("Write the reply first: the text is empty.", "text")
        if len(text) > MAX_REPLY_CHARS:
            raise ContactRejectedError(f"A reply may be {MAX_REPLY_CHARS} characters.", "text")
        await self.tickets.reply(ref, text)

    async def _escalate(self, ref: str, form: Mapping[str, str]) -> None:
        reason = form.get("reason", "").strip()
        if not reason:
            raise ContactRejectedError("Say why the ticket is escalated.", "reason")
        await self.tickets.escalate(ref, reason[:MAX_NOTE_CHARS], form.get("group") or None)

    async def _set_status(self, ref: str, form: Mapping[str, str]) -> None:
        note = form.get("note", "").strip()[:MAX_NOTE_CHARS]
        await self.tickets.set_status(ref, form.get("status", ""), note)

    async def _act(
        self,
        request: web.Request,
        done: str,
        action: Callable[[str, Mapping[str, str]], Any],
    ) -> web.Response:
        operator = await self.operator(request)
        try:
            form = await self.checked_fields(request, operator)
        except PageError as exc:
            return self.message(exc, operator)
        ref = request.match_info["ref"]
        try:
            await action(ref, form)
        except TicketNotFound:
            return self.message(PageError(404, f"There is no ticket {ref[:40]}."), operator)
        except ContactRejectedError as exc:
            return await self._ticket_page(request, operator, error=str(exc), status=400)
        except IntakeError as exc:
            log.warning("dashboard: %s on %s failed: %s", done, ref, exc)
            return self.message(
                PageError(503, "The ticket store is not answering: nothing was changed."),
                operator,
            )
        log.info("dashboard: %s %s", ref, done)
        raise web.HTTPSeeOther(f"/dashboard/tickets/{ref}?done={done}")

    # ---- rendering --------------------------------------------------------------------------
    def page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        body = self._templates.get_template(template).render(**context)
        return web.Response(text=body, status=status, content_type="text/html")

    def message(self, error: PageError, operator: Operator | None) -> web.Response:
        return self.page("message.html", status=error.status, operator=operator, message=str(error))


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never ``//evil.example`` or ``https://…`` (an open redirect)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"
