"""Twilio: the desk's phone number -- an IVR that turns calls into tickets -- and its SMS.

What it does
    Answers Twilio's webhooks on the gateway's HTTP app. Callers hear the ``[ivr]`` menu, choose
    by key or by voice, and leave a recorded message; they hang up with a ticket number, and the
    ticket holds the caller, the choice, the recording and its transcript. Texts open or continue
    an SMS ticket. See ``channels.twilio.voice`` for the call's steps, ``docs/phone.md`` for the
    Twilio console and reverse-proxy setup.

Config keys (:class:`TwilioSettings`, from ``[twilio]`` and ``[ivr]``)
    ``public_base_url`` (``[server]``: the base of every URL Twilio calls and signs),
    ``account_sid``, ``api_base_url``, ``sms_window_hours``, ``download_recordings``,
    ``spool_dir``, ``spool_retry_seconds``, ``default_region``, the menu (:class:`Menu`). The
    auth token comes from ``SPOC_TWILIO_AUTH_TOKEN``: without it the channel does not start.

Replies
    TwiML, ``text/xml``, built with the twilio library. ``403`` text/plain for a missing or
    invalid ``X-Twilio-Signature`` (nothing stored); ``400`` for a missing field. While the
    database is down the caller still hears a polite message and can leave a voicemail: the
    call's records go to the spool and are ingested once the database is back.

Idempotency key
    ``<CallSid>:recording:<RecordingSid>``, ``<CallSid>:recording-file:<RecordingSid>``,
    ``<CallSid>:transcription:<TranscriptionSid>``, ``<CallSid>:callback`` and the MessageSid:
    Twilio's retries and replays, and callbacks out of order, never make a second ticket,
    contact or attachment. Every contact of a call shares ``call:<CallSid>``: one ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from channels.base import WebhookChannel
from channels.twilio.ingest import IngestSettings, TwilioIngest
from channels.twilio.ivr import BusinessHours, Menu, MenuOption
from channels.twilio.signature import TwilioWebhook
from channels.twilio.sms import SmsWebhook
from channels.twilio.voice import TicketLookup, VoiceWebhooks
from normalizer.calls import CallJournal
from normalizer.intake import Intake

__all__ = [
    "BusinessHours",
    "Menu",
    "MenuOption",
    "TicketLookup",
    "TwilioChannel",
    "TwilioSettings",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    auth_token: str = field(repr=False)
    public_base_url: str
    menu: Menu = field(default_factory=Menu)
    account_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    sms_window_hours: float = 24.0
    download_recordings: bool = False
    spool_dir: Path = Path("var/spool/twilio")
    spool_retry_seconds: float = 5.0
    default_region: str = "US"
    hangup_grace_seconds: float = 2.0


class TwilioChannel(WebhookChannel):
    """``/twilio/voice…`` and ``/twilio/sms`` on the gateway's app, plus the spool replayer.

    ``journal`` keeps each call's progress for the call-status step: the gateway passes the
    database's (``router.calls``) so any instance can take that step; without one, it is kept
    in this process only.
    """

    name = "twilio"

    def __init__(
        self,
        settings: TwilioSettings,
        intake: Intake,
        lookup: TicketLookup | None = None,
        clock: Callable[[], datetime] | None = None,
        journal: CallJournal | None = None,
    ) -> None:
        self.settings = settings
        now = clock or (lambda: datetime.now(UTC))
        webhook = TwilioWebhook(settings.auth_token, settings.public_base_url)
        self.ingest = TwilioIngest(
            intake,
            IngestSettings(
                spool_dir=settings.spool_dir,
                sms_window_seconds=settings.sms_window_hours * 3600,
                default_region=settings.default_region,
                account_sid=settings.account_sid,
                auth_token=settings.auth_token,
                api_base_url=settings.api_base_url,
                download_recordings=settings.download_recordings,
            ),
        )
        self.voice = VoiceWebhooks(
            settings.menu,
            webhook,
            self.ingest,
            lookup,
            now,
            settings.default_region,
            settings.hangup_grace_seconds,
            journal,
        )
        self.sms = SmsWebhook(webhook, self.ingest, now)
        self._replayer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        self.voice.add_routes(app)
        self.sms.add_routes(app)

    async def start(self) -> None:
        self._stopping.clear()
        self._replayer = asyncio.create_task(self._replay_forever(), name="twilio-spool")
        log.info(
            "Twilio webhooks at %s/twilio/voice and %s/twilio/sms; spool %s",
            self.settings.public_base_url.rstrip("/"),
            self.settings.public_base_url.rstrip("/"),
            self.settings.spool_dir,
        )

    async def stop(self, grace_seconds: float) -> None:
        self._stopping.set()
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None

    async def _replay_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.ingest.replay()
            except Exception:  # keep replaying later; the records stay in the spool
                log.exception("replaying the Twilio spool failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.settings.spool_retry_seconds
                )
