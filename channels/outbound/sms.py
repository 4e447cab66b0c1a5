"""Outbound SMS through Twilio's Messages API: agent replies to phone and SMS tickets.

What it does
    ``POST {api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` with HTTP basic auth
    (account SID, auth token) and the form ``To``, ``From`` (the desk's number) and ``Body``, for
    outbox kind ``sms.reply`` (payload ``{"event": "reply" | "status" | "escalated", "to":
    "+1…", "ticket_ref": "SD-42", "text": "…", "status": …, "group": …}``, events in
    :mod:`channels.outbound.events`). The body names the ticket once, so the requester knows
    what it is about: ``SD-42: <reply>``, ``SD-42 is resolved: <note>``. A payload written
    before the transports worded (no ``event``) is a reply. Bodies over Twilio's 1600
    characters are cut with an ellipsis.

Config keys (:class:`TwilioSMSSettings`, from ``[twilio]``)
    ``account_sid``, ``phone_number`` (From), ``api_base_url`` (tests point it at a local fake),
    ``timeout_seconds``; the auth token from ``SPOC_TWILIO_AUTH_TOKEN``.

Outcomes
    2xx: delivered. 408, 429, 5xx, timeouts and connection errors: :class:`DeliveryError`
    (temporary, retried with backoff or after Twilio's ``Retry-After``). Any other 4xx (bad
    number, unverified sender) and a malformed payload: permanent. Twilio's error message is
    kept, never the message body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from channels.outbound import DeliveryError, permanent_http_status, retry_after_seconds
from channels.outbound.events import (
    UnknownEventError,
    change_sentence,
    event_of,
    fact,
)
from normalizer.outbox_events import ACK, ESCALATED, REPLY, STATUS

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600  # Twilio's limit for one message


@dataclass(frozen=True, slots=True)
class TwilioSMSSettings:
    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str
    api_base_url: str = "https://api.twilio.com"
    timeout_seconds: float = 30.0

    @property
    def messages_url(self) -> str:
        base = self.api_base_url.rstrip("/")
        return f"{base}/2010-04-01/Accounts/{self.account_sid}/Messages.json"


class TwilioSMSSender:
    def __init__(self, settings: TwilioSMSSettings) -> None:
        self.settings = settings

    async def send(self, payload: Mapping[str, Any], *, idempotency_key: str | None = None) -> str:
        """Send one ``sms.reply``; returns Twilio's message SID. The Messages API takes no
        idempotency key (``idempotency_key`` is unused)."""
        to, ref = payload.get("to"), payload.get("ticket_ref")
        if not isinstance(to, str) or not to.startswith("+"):
            raise DeliveryError("sms payload needs `to` (E.164)", permanent=True)
        try:
            body = sms_body(payload)
        except UnknownEventError as exc:
            raise DeliveryError(f"sms payload: {exc}", permanent=True) from exc
        settings = self.settings
        form = {"To": to, "From": settings.from_number, "Body": body}
        auth = {
            "Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)
        }
        timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(settings.messages_url, data=form, headers=auth) as response,
            ):
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                answer = await _json(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Twilio Messages API unreachable: {exc}", permanent=False) from exc
        if 200 <= status < 300:
            sid = str(answer.get("sid", ""))
            log.info("SMS for %s sent as %s", ref, sid)
            return sid
        why = f"Twilio answered {status}: {answer.get('code', '')} {answer.get('message', '')}"
        raise DeliveryError(
            why.strip(), permanent=permanent_http_status(status), retry_after=retry_after
        )


def sms_body(payload: Mapping[str, Any]) -> str:
    """The text message for one payload, within Twilio's limit. Raises DeliveryError when the
    payload says nothing, UnknownEventError for an event this version cannot word."""
    event, ref, text = event_of(payload), fact(payload, "ticket_ref"), payload.get("text")
    if event in (None, REPLY) and not isinstance(text, str):
        raise DeliveryError("sms payload needs `text`", permanent=True)
    said = fact(payload, "text")
    if event in (STATUS, ESCALATED):
        body = change_sentence(event, payload, ref, said)
    elif event == ACK:
        raise DeliveryError("sms payload: SMS contacts are not acknowledged", permanent=True)
    else:
        body = f"{ref}: {said}" if ref else said
    return body if len(body) <= MAX_BODY_CHARS else body[: MAX_BODY_CHARS - 1] + "…"


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return data if isinstance(data, dict) else {}
