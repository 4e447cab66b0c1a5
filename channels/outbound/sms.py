"""Outbound SMS through Twilio's Messages API: agent replies to phone and SMS tickets.

What it does
    ``POST {api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` with HTTP basic auth
    (account SID, auth token) and the form ``To``, ``From`` (the desk's number) and ``Body``, for
    outbox kind ``sms.reply`` (payload ``{"to": "+1…", "text": "…", "ticket_ref": "SD-42"}``).
    The body starts with the ticket ref (``SD-42: …``) so the requester knows what it is about.

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
        to, text, ref = payload.get("to"), payload.get("text"), payload.get("ticket_ref")
        if not isinstance(to, str) or not to.startswith("+") or not isinstance(text, str):
            raise DeliveryError("sms payload needs `to` (E.164) and `text`", permanent=True)
        body = f"{ref}: {text}" if isinstance(ref, str) and ref else text
        if len(body) > MAX_BODY_CHARS:
            body = body[: MAX_BODY_CHARS - 1] + "…"
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


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return data if isinstance(data, dict) else {}
