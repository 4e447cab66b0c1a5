"""Outbound Slack: acknowledgements, agent replies and status notes, posted in the ticket's thread.

What it does
    Posts one message per outbox payload (kinds ``slack.ack``, ``slack.reply``,
    ``slack.status``) with ``chat.postMessage``, worded here from the payload's event
    (:mod:`channels.outbound.events`). Payload::

        {"event": "ack" | "reply" | "status" | "escalated", "channel": "C123",
         "thread_ts": "1700000000.000100" | null, "ticket_ref": "SD-42", "text": "…",
         "requester_name": …, "status": …, "group": …}

    What people wrote (a reply, a name, a note, a reason) is plain text: ``&``, ``<`` and ``>``
    are escaped as Slack asks, so it shows as written and never becomes a mention or a link.
    Our own markup (the ref in ``*bold*``) is added after escaping. A payload written before
    the transports worded (no ``event``) posts its ``text``, escaped. ``thread_ts`` is used
    only when it is a Slack timestamp; anything else (a modal ticket's ``view-V…`` key) posts
    top-level. A ``channel`` that is a user id (``U…``) posts in the app's DM with that user.

Config keys (:class:`SlackSenderSettings`)
    ``bot_token`` (``SPOC_SLACK_BOT_TOKEN``), ``api_base_url`` (``[slack] api_base_url``),
    ``timeout_seconds``.

Results
    :meth:`SlackSender.send` returns the posted message's ``ts``. It raises
    :class:`channels.outbound.DeliveryError`: ``permanent=True`` when Slack says retrying cannot
    help (``channel_not_found``, ``invalid_auth``, ``not_in_channel``, ``is_archived`` …) or
    the payload is malformed; ``permanent=False`` for ``ratelimited``, HTTP 5xx, timeouts,
    refused connections and errors we do not know.

Idempotency key
    None on Slack's side: a retry after an unclear failure may post twice. The outbox row's
    own key makes sure one reply is queued once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from channels.outbound import DeliveryError, permanent_http_status, retry_after_seconds
from channels.outbound.events import (
    UnknownEventError,
    change_sentence,
    event_of,
    fact,
)
from normalizer.chat import is_slack_ts
from normalizer.mrkdwn import escape
from normalizer.outbox_events import ACK, REPLY

log = logging.getLogger(__name__)

PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "restricted_action",
        "cannot_dm_bot",
        "user_not_found",
        "team_access_not_granted",
    }
)


@dataclass(frozen=True, slots=True)
class SlackSenderSettings:
    bot_token: str = field(repr=False)
    api_base_url: str = "https://slack.com/api/"
    timeout_seconds: int = 10


def _text_field(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DeliveryError(
            f"outbound Slack payload: {key!r} must be a non-empty string", permanent=True
        )
    return value


def slack_text(payload: Mapping[str, Any]) -> str:
    """The message text (mrkdwn) for one payload: what people wrote escaped, our markup added.
    Raises UnknownEventError for an event this version cannot word."""
    event = event_of(payload)
    text = escape(fact(payload, "text"))  # a "<" someone wrote stays a "<"
    if event is None or event == REPLY:
        return text
    ref = f"*{escape(fact(payload, 'ticket_ref'))}*"
    if event == ACK:
        name = fact(payload, "requester_name")
        hello = f"Thanks {escape(name)}" if name else "Thanks"
        return (
            f"{hello}: your request is logged as {ref}. "
            "Reply in this thread to add information; answers from the desk will appear here."
        )
    return change_sentence(event, payload, ref, text, escape)


class SlackSender:
    """Delivers ``slack.*`` outbox payloads with ``chat.postMessage``."""

    def __init__(self, settings: SlackSenderSettings, client: AsyncWebClient | None = None) -> None:
        base = (
            settings.api_base_url
            if settings.api_base_url.endswith("/")
            else settings.api_base_url + "/"
        )
        self._client = client or AsyncWebClient(
            token=settings.bot_token, base_url=base, timeout=settings.timeout_seconds
        )

    async def send(self, payload: Mapping[str, Any], *, idempotency_key: str | None = None) -> str:
        """Post one payload; Slack takes no idempotency key (``idempotency_key`` is unused)."""
        channel = _text_field(payload, "channel")
        try:
            text = slack_text(payload)
        except UnknownEventError as exc:
            raise DeliveryError(f"outbound Slack payload: {exc}", permanent=True) from exc
        if not text.strip():
            raise DeliveryError("outbound Slack payload: nothing to say", permanent=True)
        thread_ts = payload.get("thread_ts")
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if isinstance(thread_ts, str) and is_slack_ts(thread_ts):
            kwargs["thread_ts"] = thread_ts
        try:
            response = await self._client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            status = exc.response.status_code
            error = str(data.get("error") or f"HTTP {status}")
            permanent = error in PERMANENT_ERRORS or permanent_http_status(status)
            raise DeliveryError(
                f"Slack chat.postMessage: {error}",
                permanent=permanent,
                retry_after=retry_after_seconds(_header(exc.response.headers)),
            ) from exc
        except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"Slack chat.postMessage: {type(exc).__name__}: {exc}", permanent=False
            ) from exc
        ts = response.get("ts")
        log.info("Slack message posted for %s", payload.get("ticket_ref"))
        return str(ts or "")


def _header(headers: object) -> str | None:
    """``Retry-After`` from a Slack response's headers (a dict whose values may be lists)."""
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "retry-after":
            first = value[0] if isinstance(value, list) and value else value
            return first if isinstance(first, str) else None
    return None
