"""The gateway's HTTP application: health, readiness, metrics, the dashboard and the REST API.

Routes: ``GET /healthz`` (200 while the process lives), ``GET /readyz`` (200 when the database
answers, else 503), ``GET /metrics`` (Prometheus text), ``GET /`` and ``/dashboard/…`` (the
operators' dashboard, ``gateway.dashboard``) and the API under ``/api`` (``gateway.api``).
Channel webhooks and forms (Twilio, Slack, ``/report``) are added by their own modules onto the
same app. Every response carries a strict Content-Security-Policy (no script at all, no
framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.

Every error is JSON ``{"error": ...}``: aiohttp's own 404/405/413 included. Request bodies are
charged to one budget of bytes in flight before a handler reads them (503 + ``Retry-After``
when it is spent; :mod:`gateway.http_budget`). An unexpected exception is logged with its
traceback and answers a JSON 500 -- bad input never gets there.

Behind a reverse proxy listed in ``[server] trusted_proxies`` the client's address
(``request.remote``, the access log) is the one the proxy forwarded (``gateway.client_address``).

The app runs in the gateway's one event loop through :func:`start_http` (``AppRunner`` +
``TCPSite``), beside the SMTP server; state lives in typed ``AppKey`` slots, not globals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from aiohttp import web

from channels.base import WebhookChannel
from channels.inflight_budget import InflightBudget
from channels.networks import IPNetwork
from gateway.api import build_api_app, error_response, json_response
from gateway.api_outbox import add_outbox_routes
from gateway.api_quarantine import add_quarantine_routes
from gateway.client_address import ClientAccessLogger, forwarded_client
from gateway.dashboard import Dashboard
from gateway.http_budget import (
    BODY_BUDGET_KEY,
    CLIENT_MAX_SIZE,
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_MAX_INFLIGHT_BODY_BYTES,
    body_budget,
)
from gateway.http_metrics import MetricsScrape, route_timing
from gateway.logs import ClientErrorLogger
from gateway.metrics import Metrics
from gateway.openapi import add_openapi_route
from normalizer.intake import Intake
from router.outbox_admin import OutboxAdmin
from router.store import Store
from router.tickets import TicketService

log = logging.getLogger(__name__)

# No script runs on any page we serve; styles and images only from here; no framing.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

STORE_KEY: Final = web.AppKey("store", Store)
TICKETS_KEY: Final = web.AppKey("tickets", TicketService)
METRICS_KEY: Final = web.AppKey("metrics", Metrics)
OUTBOX_KEY: Final = web.AppKey("outbox", OutboxAdmin)
SCRAPE_KEY: Final = web.AppKey("scrape", MetricsScrape)

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
    dashboard: Dashboard | None = None,
    trusted_proxies: Sequence[IPNetwork] = (),
    max_inflight_body_bytes: int = DEFAULT_MAX_INFLIGHT_BODY_BYTES,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
) -> web.Application:
    """The root application. ``api_enabled=False`` leaves ``/api`` out entirely (404);
    without a ``dashboard`` ``GET /`` is a 404. A request from one of ``trusted_proxies`` is
    seen as coming from the client its ``X-Forwarded-For`` names (``gateway.client_address``).
    Request bodies in flight, all requests together, stay within ``max_inflight_body_bytes``
    and must arrive within ``body_timeout_seconds`` (:mod:`gateway.http_budget`)."""
    budget = InflightBudget(max_inflight_body_bytes)
    middlewares = [route_timing(metrics)]
    if trusted_proxies:  # without any, X-Forwarded-For is never read: nothing to do per request
        middlewares.append(forwarded_client(trusted_proxies))
    middlewares += [body_budget(budget, body_timeout_seconds), _json_errors]
    app = web.Application(middlewares=middlewares, client_max_size=CLIENT_MAX_SIZE)
    app[BODY_BUDGET_KEY] = budget
    app[STORE_KEY] = store
    app[TICKETS_KEY] = tickets
    app[METRICS_KEY] = metrics
    app[OUTBOX_KEY] = OutboxAdmin(store)
    app[SCRAPE_KEY] = MetricsScrape(metrics, app[OUTBOX_KEY], store)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    if dashboard is not None:
        dashboard.add_routes(app)
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


async def start_http(
    app: web.Application, host: str, port: int, *, reuse_port: bool = False
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` in the running loop; ``await runner.cleanup()`` to stop.
    ``reuse_port``: bind with SO_REUSEPORT, sharing the port with other processes that do."""
    runner = web.AppRunner(app, logger=ClientErrorLogger(), access_log_class=ClientAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
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
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # aiohttp fails the body's read when the client hangs up mid-body: not our error,
            # and nobody is left to read an answer.
            log.info("client closed the connection during %s %s", request.method, request.path)
            return error_response(400, "the connection was closed before the request was read")
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error")


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


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
    body, content_type = await request.app[SCRAPE_KEY].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
