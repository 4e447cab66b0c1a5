"""Inbound SMS: Twilio's "a message comes in" webhook, ``POST /twilio/sms``.

A text opens a ticket, or joins the sender's open SMS ticket when that was active within
``sms_window_hours``. The TwiML answer names the ticket (``<Message>``); agent replies go out
through the outbox and Twilio's Messages API (``channels.outbound.sms``). Idempotency key: the
MessageSid. Every text is kept, whoever sent it: a short code, an alphanumeric sender id or a
withheld sender too (their TwiML is an empty ``<Response/>``: nothing can answer them); an
opt-out keyword (``STOP``, ``START`` … which Twilio answers itself) gets an empty
``<Response/>`` and no ticket; a missing MessageSid 400.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from channels.http_bodies import add_body_route
from channels.twilio.ingest import TwilioIngest
from channels.twilio.signature import Form, TwilioWebhook, required
from normalizer.phone import read_caller_id
from normalizer.telephony import SmsMessage

log = logging.getLogger(__name__)

MAX_MEDIA = 10
# Twilio answers these itself (Advanced Opt-Out) and still forwards them: they are not requests.
OPT_OUT_KEYWORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "start", "unstop"}
)


class SmsWebhook:
    def __init__(
        self, webhook: TwilioWebhook, ingest: TwilioIngest, clock: Callable[[], datetime]
    ) -> None:
        self.webhook = webhook
        self.ingest = ingest
        self._now = clock

    def add_routes(self, app: web.Application) -> None:
        add_body_route(app, "/twilio/sms", self.webhook.wrap(self.message))

    async def message(self, request: web.Request, form: Form) -> web.Response:
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        sid = required({"MessageSid": sid}, "MessageSid")
        if form.get("Body", "").strip().casefold() in OPT_OUT_KEYWORDS:
            log.info("SMS %s is an opt-out keyword: no ticket", sid)
            return _twiml(MessagingResponse())
        media_count = min(_count(form.get("NumMedia")), MAX_MEDIA)
        media = tuple(u for i in range(media_count) if (u := form.get(f"MediaUrl{i}", "")))
        message = SmsMessage(
            message_sid=sid,
            sender=form.get("From", ""),
            received_at=self._now(),
            body=form.get("Body", ""),
            media_urls=media,
        )
        response = MessagingResponse()
        result = await self.ingest.sms(message)
        if read_caller_id(message.sender, self.ingest.settings.default_region).phone is None:
            log.info("SMS %s kept; its sender is no phone number, so it gets no answer", sid)
            return _twiml(response)
        if result is None:
            response.message("Thanks, we have your message and will get back to you soon.")
        elif result.created:
            response.message(f"Thanks, we have your message. Your ticket is {result.ticket_ref}.")
        elif result.duplicate:
            response.message(f"Thanks, we have your message on ticket {result.ticket_ref}.")
        else:
            response.message(f"Thanks, we added your message to ticket {result.ticket_ref}.")
        return _twiml(response)


def _count(value: str | None) -> int:
    try:
        return max(0, int(value or "0"))
    except ValueError:
        return 0


def _twiml(response: MessagingResponse) -> web.Response:
    return web.Response(text=str(response), content_type="text/xml")
