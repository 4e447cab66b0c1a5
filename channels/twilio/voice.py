"""The voice IVR: Twilio's "a call comes in" webhook and every later step of the call.

Steps (all ``POST``, all signed; every URL after the first is one spoc wrote into its TwiML,
absolute on ``server.public_base_url``, carrying the caller's place in the menu as ``p`` (path),
``n`` (retries), ``t`` (the ticket they add to) and ``ah`` (after hours)):

``/twilio/voice``               greeting and menu (``<Gather input="dtmf speech">``); after hours,
                                the announcement and voicemail. A caller with an open ticket
                                from the last ``recent_ticket_hours`` hears "press 9 to add".
``/twilio/voice/menu``          the choice: a submenu, ``<Dial>`` to a desk number, or the
                                recording notice and ``<Record>``. Invalid or no input re-prompts
                                up to ``max_retries``, then the default route.
``/twilio/voice/dialed``        ``<Dial>`` ended: put through, or voicemail when nobody answered.
``/twilio/voice/recorded``      ``<Record>`` ended: the ticket is made (or found) and the caller
                                hears its ref one character at a time ("S D 4 2").
``/twilio/voice/recording``     recording status callback: the same contact (idempotent), or the
                                downloaded file as an attachment (``recording-file``).
``/twilio/voice/transcription`` the transcript, added to the call's ticket.
``/twilio/voice/status``        call status callback: a caller who hung up before leaving a
                                message leaves a "call back" ticket with their number and choice.

Every answer is TwiML (``text/xml``), built with the twilio library.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from channels.http_bodies import add_body_route
from channels.twilio.ingest import TwilioIngest
from channels.twilio.ivr import Menu, MenuOption, match_speech, spoken_ref, wants_existing_ticket
from channels.twilio.journal import MemoryCallJournal
from channels.twilio.signature import Form, MissingField, TwilioWebhook, required
from normalizer.calls import CallJournal, CallProgress
from normalizer.intake import IntakeResult
from normalizer.phone import read_caller_id, to_e164
from normalizer.refs import is_ref
from normalizer.telephony import CallEvent

log = logging.getLogger(__name__)

_PATH_RE = re.compile(r"^[0-9*#]{0,8}$")
_FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
DIAL_TIMEOUT_SECONDS = 20
# How long the call-status step waits for the <Record> action of a caller who hung up while
# recording, before it makes a "call back" contact (Twilio may send the two in either order).
HANGUP_GRACE_SECONDS = 2.0
# The call's progress is kept in the database; a step that cannot reach it within this goes on
# without it (the caller is never kept waiting for bookkeeping).
JOURNAL_TIMEOUT_SECONDS = 2.0

T = TypeVar("T")


class TicketLookup(Protocol):
    """Read-only questions the IVR asks about tickets (the gateway backs it with the store)."""

    async def open_ticket_for_phone(self, phone: str, within_seconds: float) -> str | None: ...

    async def ticket_for_call(self, call_sid: str) -> str | None: ...


MAX_CACHED_ANSWERS = 1024
# Callers call again: parsing a number is a noticeable part of answering a call.
_caller_e164 = functools.lru_cache(maxsize=4096)(to_e164)
_caller_id = functools.lru_cache(maxsize=4096)(read_caller_id)


def twiml(response: VoiceResponse | str) -> web.Response:
    return web.Response(text=str(response), content_type="text/xml")


class VoiceWebhooks:
    """The handlers of one Twilio voice number. Between steps a call's state travels in the
    signed URLs spoc writes, and, for the call-status step, in ``journal`` (the database)."""

    def __init__(
        self,
        menu: Menu,
        webhook: TwilioWebhook,
        ingest: TwilioIngest,
        lookup: TicketLookup | None,
        clock: Callable[[], datetime],
        default_region: str = "US",
        hangup_grace_seconds: float = HANGUP_GRACE_SECONDS,
        journal: CallJournal | None = None,
    ) -> None:
        self.menu = menu
        self.hangup_grace_seconds = hangup_grace_seconds
        self.webhook = webhook
        self.ingest = ingest
        self.lookup = lookup
        self.journal: CallJournal = journal if journal is not None else MemoryCallJournal()
        self._now = clock
        self._region = default_region
        # Menu and recording answers depend only on their arguments (the config is fixed):
        # each is built with the twilio library once, then served from here.
        self._answers: dict[tuple[object, ...], str] = {}
        self._voice: dict[str, Any] = {"language": menu.language}
        if menu.voice:
            self._voice["voice"] = menu.voice

    def add_routes(self, app: web.Application) -> None:
        steps: Mapping[str, Callable[[web.Request, Form], Awaitable[web.Response]]] = {
            "/twilio/voice": self.incoming,
            "/twilio/voice/menu": self.choice,
            "/twilio/voice/dialed": self.dialed,
            "/twilio/voice/recorded": self.recorded,
            "/twilio/voice/recording": self.recording,
            "/twilio/voice/transcription": self.transcription,
            "/twilio/voice/status": self.status,
        }
        for path, step in steps.items():
            add_body_route(app, path, self.webhook.wrap(step))

    # ---- steps --------------------------------------------------------------------------------
    async def incoming(self, request: web.Request, form: Form) -> web.Response:
        call_sid = required(form, "CallSid")
        hours = self.menu.hours
        if hours is not None and not hours.is_open(self._now()):
            intro = self.menu.after_hours_message
            return await self._record(call_sid, "", after_hours=True, intro=intro)
        offered = await self._open_ticket(form.get("From", ""))
        return self._gather("", 0, offered)

    async def choice(self, request: web.Request, form: Form) -> web.Response:
        call_sid = required(form, "CallSid")
        path, tries, offered = self._place(request)
        found = self.menu.node(path)
        if found is None:
            path, found = "", self.menu.node("")
            assert found is not None
        options = found[0]
        digits = form.get("Digits", "").strip()
        speech = form.get("SpeechResult", "").strip()
        if offered is not None and (
            digits == self.menu.add_to_ticket_digit
            or (not digits and wants_existing_ticket(speech))
        ):
            return await self._record(call_sid, "", offered=offered)
        digit = digits[:1] if digits else (match_speech(speech, options) if speech else None)
        option = next((o for o in options if o.digit == digit), None)
        if option is not None:
            return await self._take(call_sid, path + option.digit, option)
        tries += 1
        if tries <= self.menu.max_retries:
            return self._gather(path, tries, offered, sorry=True)
        default = self.menu.default_option()
        if default is not None:
            return await self._take(call_sid, default.digit, default)
        intro = "Let us take a message for the service desk."
        return await self._record(call_sid, "", intro=intro)

    async def dialed(self, request: web.Request, form: Form) -> web.Response:
        call_sid = required(form, "CallSid")
        path, _, _ = self._place(request)
        if form.get("DialCallStatus", "") == "completed":
            await self._keep("finish", call_sid, self.journal.finish(call_sid), None)
            response = VoiceResponse()
            response.hangup()
            return twiml(response)
        return await self._record(call_sid, path, intro="Nobody could take your call right now.")

    async def recorded(self, request: web.Request, form: Form) -> web.Response:
        call_sid = required(form, "CallSid")
        await self._keep("finish", call_sid, self.journal.finish(call_sid), None)
        recording_sid = form.get("RecordingSid", "").strip()
        if recording_sid:
            event = self._event(
                request,
                form,
                "recording",
                recording_sid,
                recording_url=form.get("RecordingUrl") or None,
                recording_seconds=_int(form.get("RecordingDuration")),
            )
        else:
            event = self._event(
                request, form, "callback", note="The caller left no message on the recording."
            )
        result = await self.ingest.call(event)
        added = event.add_to_ref is not None and result is not None and not result.created
        return self._goodbye(result, added=added)

    async def recording(self, request: web.Request, form: Form) -> web.Response:
        required(form, "CallSid")
        recording_sid = required(form, "RecordingSid")
        if form.get("RecordingStatus", "completed") != "completed":
            return twiml(VoiceResponse())
        step = "recording-file" if self.ingest.settings.can_download else "recording"
        event = self._event(
            request,
            form,
            step,
            recording_sid,
            recording_url=form.get("RecordingUrl") or None,
            recording_seconds=_int(form.get("RecordingDuration")),
        )
        await self.ingest.call(event)
        return twiml(VoiceResponse())

    async def transcription(self, request: web.Request, form: Form) -> web.Response:
        required(form, "CallSid")
        transcription_sid = required(form, "TranscriptionSid")
        if form.get("TranscriptionStatus", "completed") != "completed":
            log.info("transcription %s: %s", transcription_sid, form.get("TranscriptionStatus"))
            return twiml(VoiceResponse())
        event = self._event(
            request,
            form,
            "transcription",
            transcription_sid,
            transcript=form.get("TranscriptionText", ""),
        )
        await self.ingest.call(event)
        return twiml(VoiceResponse())

    async def status(self, request: web.Request, form: Form) -> web.Response:
        call_sid = required(form, "CallSid")
        if form.get("CallStatus", "") not in _FINAL_CALL_STATUSES:
            return twiml(VoiceResponse())
        journal = self.journal
        progress = await self._keep("read", call_sid, journal.get(call_sid), None)
        if progress is not None and progress.recording and not progress.finished:
            # The <Record> action may be under way on this instance or another one.
            grace = self.hangup_grace_seconds
            waited = journal.wait_finished(call_sid, grace)
            await self._keep("wait for", call_sid, waited, False, grace + JOURNAL_TIMEOUT_SECONDS)
            progress = await self._keep("read", call_sid, journal.get(call_sid), None) or progress
        if progress is not None and progress.finished:
            return twiml(VoiceResponse())
        if await self._call_has_ticket(call_sid):
            return twiml(VoiceResponse())
        chosen = progress.path if progress is not None else None
        if _caller_id(form.get("From", ""), self._region).withheld and chosen is None:
            log.info("call %s: withheld caller hung up before choosing; no ticket", call_sid)
            return twiml(VoiceResponse())
        note = (
            "The caller hung up during the menu."
            if chosen is None
            else "The caller hung up before leaving a message."
        )
        event = self._event(
            request,
            form,
            "callback",
            note=note,
            path=chosen or "",
            offered=progress.offered_ref if progress is not None else None,
            after_hours=progress.after_hours if progress is not None else False,
        )
        await self.ingest.call(event)
        # Done: a retried status callback finds the call finished and makes nothing more.
        await self._keep("finish", call_sid, journal.finish(call_sid), None)
        return twiml(VoiceResponse())

    # ---- TwiML --------------------------------------------------------------------------------
    def _url(self, step: str, **query: str) -> str:
        return f"{self.webhook.base_url}/twilio/voice/{step}?{urlencode(query)}"

    def _gather(
        self, path: str, tries: int, offered: str | None, *, sorry: bool = False
    ) -> web.Response:
        key: tuple[object, ...] = ("gather", path, tries, offered, sorry)
        cached = self._answers.get(key)
        if cached is not None:
            return twiml(cached)
        query = {"p": path, "n": str(tries)} | ({"t": offered} if offered else {})
        action = self._url("menu", **query)
        response = VoiceResponse()
        gather = response.gather(
            input="dtmf speech",
            action=action,
            method="POST",
            timeout=self.menu.gather_timeout_seconds,
            num_digits=1,
            speech_timeout="auto",
            hints=self.menu.hints(path) or None,
            language=self.menu.language,
        )
        prompt = self.menu.prompt(path, offered)
        gather.say(("Sorry, I didn't get that. " if sorry else "") + prompt, **self._voice)
        response.redirect(action, method="POST")  # no input: the same step, one try more
        return twiml(self._remember(key, str(response)))

    async def _take(self, call_sid: str, path: str, option: MenuOption) -> web.Response:
        if option.is_submenu or (option.action == "dial" and option.dial_number):
            chose = self.journal.chose(call_sid, CallProgress(path=path))
            await self._keep("save", call_sid, chose, None)
        if option.is_submenu:
            return self._gather(path, 0, None)
        if option.action == "dial" and option.dial_number:
            response = VoiceResponse()
            response.say("Connecting you to the service desk.", **self._voice)
            response.dial(
                option.dial_number,
                action=self._url("dialed", p=path),
                method="POST",
                timeout=DIAL_TIMEOUT_SECONDS,
            )
            return twiml(response)
        return await self._record(call_sid, path)

    async def _record(
        self,
        call_sid: str,
        path: str,
        *,
        offered: str | None = None,
        after_hours: bool = False,
        intro: str | None = None,
    ) -> web.Response:
        progress = CallProgress(path, offered, after_hours, recording=True)
        await self._keep("save", call_sid, self.journal.chose(call_sid, progress), None)
        key: tuple[object, ...] = ("record", path, offered, after_hours, intro)
        cached = self._answers.get(key)
        if cached is not None:
            return twiml(cached)
        query = (
            {"p": path} | ({"t": offered} if offered else {}) | ({"ah": "1"} if after_hours else {})
        )
        response = VoiceResponse()
        if intro:
            response.say(intro, **self._voice)
        if offered:
            response.say(
                f"Your message will be added to ticket {spoken_ref(offered)}.", **self._voice
            )
        response.say(self.menu.recording_notice, **self._voice)
        response.record(
            action=self._url("recorded", **query),
            method="POST",
            max_length=self.menu.max_recording_seconds,
            timeout=5,
            finish_on_key="#",
            play_beep=True,
            recording_status_callback=self._url("recording", **query),
            recording_status_callback_method="POST",
            recording_status_callback_event="completed",
            transcribe=self.menu.transcribe,
            transcribe_callback=self._url("transcription", **query)
            if self.menu.transcribe
            else None,
        )
        # <Record> with no audio goes on to the next verb instead of calling its action.
        response.redirect(self._url("recorded", **query), method="POST")
        return twiml(self._remember(key, str(response)))

    def _remember(self, key: tuple[object, ...], answer: str) -> str:
        if len(self._answers) >= MAX_CACHED_ANSWERS:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def _goodbye(self, result: IntakeResult | None, *, added: bool) -> web.Response:
        response = VoiceResponse()
        if result is None:
            response.say(
                "Thank you. We have your message, and we will get back to you soon. Goodbye.",
                **self._voice,
            )
        else:
            spoken = spoken_ref(result.ticket_ref)
            lead = "Your message was added to ticket" if added else "Your ticket number is"
            response.say(f"Thank you. {lead} {spoken}. Again, {spoken}. Goodbye.", **self._voice)
        response.hangup()
        return twiml(response)

    # ---- helpers ------------------------------------------------------------------------------
    async def _keep(
        self,
        what: str,
        call_sid: str,
        step: Awaitable[T],
        fallback: T,
        timeout: float = JOURNAL_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> T:
        """Run one journal ``step``; if the database fails or is slow, log it and go on."""
        try:
            async with asyncio.timeout(timeout):
                return await step
        except Exception as exc:  # the call goes on; a call-back may lack the choice
            log.warning(
                "call %s: could not %s its progress (%s: %s)",
                call_sid,
                what,
                type(exc).__name__,
                exc,
            )
            return fallback

    def _place(self, request: web.Request) -> tuple[str, int, str | None]:
        """The caller's place from the query string spoc wrote: path, retries, offered ref."""
        query = request.rel_url.query
        path = query.get("p", "")
        if not _PATH_RE.match(path):
            raise MissingField("p", "is not a menu path")
        tries = _int(query.get("n")) or 0
        offered = query.get("t") or None
        if offered is not None and not is_ref(offered):
            raise MissingField("t", "is not a ticket ref")
        return path, min(max(tries, 0), 99), offered

    def _event(
        self,
        request: web.Request,
        form: Form,
        step: str,
        step_id: str = "",
        *,
        path: str | None = None,
        offered: str | None = None,
        after_hours: bool | None = None,
        **fields: Any,
    ) -> CallEvent:
        if path is None:
            path, _, offered = self._place(request)
        if after_hours is None:
            after_hours = request.rel_url.query.get("ah") == "1"
        option = self.menu.option_at(path)
        return CallEvent(
            call_sid=required(form, "CallSid"),
            step=step,
            step_id=step_id,
            received_at=self._now(),
            caller=form.get("From", ""),
            caller_name=form.get("CallerName") or None,
            choice=option.label if option is not None else None,
            category=option.category if option is not None else None,
            kind=option.kind if option is not None else None,
            add_to_ref=offered,
            after_hours=after_hours,
            **fields,
        )

    async def _open_ticket(self, caller: str) -> str | None:
        phone = _caller_e164(caller, self._region)
        if phone is None or self.lookup is None or self.menu.recent_ticket_hours <= 0:
            return None
        try:
            return await self.lookup.open_ticket_for_phone(
                phone, self.menu.recent_ticket_hours * 3600
            )
        except Exception:  # the menu works without the offer (e.g. the database is down)
            log.warning("could not look up the caller's open ticket", exc_info=True)
            return None

    async def _call_has_ticket(self, call_sid: str) -> bool:
        if self.lookup is None:
            return False
        try:
            return await self.lookup.ticket_for_call(call_sid) is not None
        except Exception:  # unknown: make the call-back contact; it joins the call's ticket
            log.warning("could not look up call %s", call_sid, exc_info=True)
            return False


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
