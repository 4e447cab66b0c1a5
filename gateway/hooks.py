"""``POST /hooks/{name}``: the answers of the tools behind ``[[forward]]`` coming back.

Each target's connector verifies the request the way its tool signs webhooks and reads it into
:class:`normalizer.hooks.HookEvent` values (``read_hook``); :class:`router.forward_hooks.HookInbox`
applies each once. Answers: 200 ``{"applied": n, "duplicates": n, "ignored": n}`` once stored
(a replay counts as a duplicate and changes nothing); 401 for a missing or bad signature,
nothing stored; 400 ``{"error", "field"}`` for a signed body we cannot read; 404 for an
unknown target or a ticket the target does not hold; 503 while the store is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from aiohttp import web

from channels.http_bodies import add_body_route
from channels.outbound import DeliveryError
from channels.outbound.forward import ForwardJob, ForwardResult
from gateway.api import error_response, json_response
from normalizer.hooks import HookEvent, HookMalformed, HookRefused
from normalizer.intake import ContactRejectedError, IntakeError
from router.forward_hooks import HookInbox, HookTicketUnknown

log = logging.getLogger(__name__)


class Target(Protocol):
    """A forward connector: sends ticket events, reads its tool's webhooks."""

    async def forward(self, job: ForwardJob) -> ForwardResult: ...

    async def read_hook(self, headers: Mapping[str, str], raw: bytes) -> list[HookEvent]: ...


HOOKS_KEY: Final = web.AppKey("hooks", dict[str, Target])
INBOX_KEY: Final = web.AppKey("hook_inbox", HookInbox)
APPLIED_KEY: Final[web.AppKey[Callable[[], None]]] = web.AppKey("hook_applied")


def add_hook_routes(
    app: web.Application,
    targets: Mapping[str, Target],
    inbox: HookInbox,
    applied: Callable[[], None] = lambda: None,
) -> None:
    """``applied`` is called after a hook changed something (the dispatcher's wake)."""
    app[HOOKS_KEY] = dict(targets)
    app[INBOX_KEY] = inbox
    app[APPLIED_KEY] = applied
    add_body_route(app, "/hooks/{name}", receive_hook)


async def receive_hook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    target = request.app[HOOKS_KEY].get(name)
    if target is None:
        return error_response(404, f"no forward target named {name!r} is running")
    raw = await request.read()
    try:
        events = await target.read_hook(request.headers, raw)
    except HookRefused as exc:
        log.warning("hook %s refused: %s", name, exc)
        return error_response(401, str(exc))
    except HookMalformed as exc:
        return error_response(400, str(exc), field=exc.field)
    except DeliveryError as exc:  # the tool did not answer our read-back: it retries
        log.warning("hook %s not applied: %s", name, exc)
        return error_response(503, f"{name} could not be read back: {exc}")
    counts = {"applied": 0, "duplicates": 0, "ignored": 0}
    if not events:
        counts["ignored"] = 1
    for event in events:
        try:
            outcome = await request.app[INBOX_KEY].apply(name, event)
        except HookTicketUnknown as exc:
            return error_response(404, f"{name} holds no ticket {exc}")
        except ContactRejectedError as exc:
            return error_response(400, str(exc), field=exc.field or "type")
        except IntakeError as exc:
            log.warning("hook %s not stored: %s", name, exc)
            return error_response(503, "the ticket store is not answering; send it again later")
        counts["applied" if outcome.applied else "duplicates"] += 1
    if counts["applied"]:
        request.app[APPLIED_KEY]()
    return json_response(counts)
