"""The gateway's HTTP application: health, readiness, metrics, the dashboard and the REST API.

Routes: ``GET /healthz`` (200 while the process lives), ``GET /readyz`` (200 when the database
answers, else 503), ``GET /metrics`` (Prometheus text), ``GET /`` (the intake dashboard) and the
API under ``/api`` (``gateway.api``). Channel webhooks (Twilio, Slack) are added by their own
modules onto the same app.

Every error is JSON ``{"error": ...}``: aiohttp's own 404/405/413 included. An unexpected
exception is logged with its traceback and answers a JSON 500 -- bad input never gets there.

The app runs in the gateway's one event loop through :func:`start_http` (``AppRunner`` +
``TCPSite``), beside the SMTP server; state lives in typed ``AppKey`` slots, not globals.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from aiohttp import web

from channels.base import WebhookChannel
from gateway.api import build_api_app, error_response, json_response
from gateway.api_outbox import add_outbox_routes
from gateway.api_quarantine import add_quarantine_routes
from gateway.auth import BEARER_CHALLENGE, encode_tokens, has_valid_bearer_token
from gateway.http_metrics import refresh_gauges, route_timing
from gateway.logs import ClientErrorLogger
from gateway.metrics import Metrics
from gateway.openapi import add_openapi_route
from normalizer.intake import Intake, IntakeError
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore
from router.store import Store
from router.tickets import TicketQuery, TicketService

log = logging.getLogger(__name__)

CLIENT_MAX_SIZE: Final = 2 * 1024 * 1024  # bytes; bigger bodies get 413
DASHBOARD_TICKETS: Final = 20

STORE_KEY: Final = web.AppKey("store", Store)
TICKETS_KEY: Final = web.AppKey("tickets", TicketService)
METRICS_KEY: Final = web.AppKey("metrics", Metrics)
OUTBOX_KEY: Final = web.AppKey("outbox", OutboxAdmin)
DASHBOARD_TOKENS_KEY: Final = web.AppKey("dashboard_tokens", tuple[bytes, ...])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    *,
    store: Store,
    tickets: TicketService,
    intake: Intake,
    metrics: Metrics,
    api_tokens: tuple[str, ...],
    api_enabled: bool,
    channels: Sequence[WebhookChannel] = (),
) -> web.Application:
    """The root application. ``api_enabled=False`` leaves ``/api`` out entirely (404)."""
    app = web.Application(
        middlewares=[route_timing(metrics), _json_errors], client_max_size=CLIENT_MAX_SIZE
    )
    app[STORE_KEY] = store
    app[TICKETS_KEY] = tickets
    app[METRICS_KEY] = metrics
    app[OUTBOX_KEY] = OutboxAdmin(store)
    app[DASHBOARD_TOKENS_KEY] = encode_tokens(api_tokens)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/", dashboard)
    for channel in channels:
        channel.add_routes(app)
    if api_enabled:
        if not api_tokens:
            log.warning("[api] is enabled but SPOC_API_TOKEN is not set: every call gets 401")
        api = build_api_app(tickets=tickets, intake=intake, metrics=metrics, api_tokens=api_tokens)
        add_quarantine_routes(api, store=store, intake=intake, settings=tickets.settings)
        add_outbox_routes(api, app[OUTBOX_KEY])
        add_openapi_route(api)
        app.add_subapp("/api", api)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` in the running loop; ``await runner.cleanup()`` to stop."""
    runner = web.AppRunner(app, logger=ClientErrorLogger())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("HTTP listening on http://%s:%d/", host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner's first site is bound to (useful after binding port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the HTTP runner is not bound to a TCP port")


# ---- middleware -----------------------------------------------------------------------------
@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _http_error_message(exc), headers=_kept_headers(exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error")


def _http_error_message(exc: web.HTTPException) -> str:
    text = exc.text or ""
    default = f"{exc.status}: {exc.reason}"
    return text if text and text != default else exc.reason


def _kept_headers(exc: web.HTTPException) -> Mapping[str, str]:
    keep = ("Allow", "WWW-Authenticate", "Retry-After")
    return {name: exc.headers[name] for name in keep if name in exc.headers}


# ---- handlers -------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        ready = await request.app[STORE_KEY].ping()
    except Exception:  # readiness must answer, whatever the store does
        log.warning("readiness check failed", exc_info=True)
        ready = False
    if ready:
        return json_response({"status": "ready"})
    return json_response({"status": "unavailable"}, status=503)


async def metrics_page(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    store = request.app[STORE_KEY]
    await refresh_gauges(metrics, request.app[OUTBOX_KEY], QuarantineStore(store))
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def dashboard(request: web.Request) -> web.Response:
    # The dashboard shares its port with Twilio's and Slack's webhooks, so it is usually
    # reachable from outside: without the API's bearer token it shows nothing at all.
    tokens: tuple[bytes, ...] = request.app[DASHBOARD_TOKENS_KEY]
    if not has_valid_bearer_token(request, tokens):
        return web.Response(
            text=_page("<p>Sign in: this page needs the API's bearer token.</p>"),
            status=401,
            headers=BEARER_CHALLENGE,
            content_type="text/html",
        )
    try:
        page = await request.app[TICKETS_KEY].list(TicketQuery(limit=DASHBOARD_TICKETS))
    except IntakeError as exc:
        log.warning("dashboard: tickets unavailable: %s", exc)
        return web.Response(
            text=_page("<p>The ticket store is not answering right now.</p>"),
            status=503,
            content_type="text/html",
        )
    return web.Response(text=_page(_ticket_table(page.items)), content_type="text/html")


_COLUMNS: Final = ("ref", "status", "priority", "channel", "group", "subject", "created_at")


def _ticket_table(items: list[dict[str, object]]) -> str:
    if not items:
        return "<p>No tickets yet.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    rows = []
    for item in items:
        cells = "".join(f"<td>{html.escape(str(item.get(c, '')))}</td>" for c in _COLUMNS)
        rows.append(f"<tr>{cells}</tr>")
    return (
        f"<h2>Latest {len(items)} tickets</h2>\n<table>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>"
    )


def _page(content: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>spoc</title>\n</head>\n<body>\n<h1>spoc</h1>\n"
        "<p>The single point of contact: every channel's contacts, newest first. "
        'Health: <a href="/healthz">/healthz</a>, metrics: <a href="/metrics">/metrics</a>, '
        "API: <code>/api/tickets</code>.</p>\n"
        f"{content}\n</body>\n</html>\n"
    )
