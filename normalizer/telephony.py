"""Phone calls and text messages -> :class:`Contact`. Pure: no I/O, no clock, no framework.

The Twilio channel (``channels/twilio``) reads Twilio's form fields into the primitive records
here -- :class:`CallEvent` for something that happened on a call, :class:`SmsMessage` for a text
-- and these converters build the contact. The records are plain data, so the channel can also
write them to its spool when the database is down and replay them later.

Rules:

- The caller or texter is converted to E.164 (``+15550100``) with ``default_region`` for national
  numbers. A withheld caller (``anonymous``, Twilio's stand-in numbers ...) has no number; a call
  from one still makes a ticket, under a requester of its own whose only identifier is
  ``withheld.<CallSid>@phone.invalid`` (the ``.invalid`` TLD can never receive mail, and no two
  withheld calls share a requester). A withheld texter is refused (``field="From"``).
- Every contact of one call carries ``ThreadHints(call_id=CallSid)``: the recording, the
  transcript and a hang-up all land on one ticket. The idempotency key (``external_id``) is
  ``<CallSid>:<step>[:<sid>]``: ``CA…:recording:RE…``, ``CA…:recording-file:RE…``,
  ``CA…:transcription:TR…``, ``CA…:callback``.
- An IVR choice becomes ``Hints(category, kind)``; "add to my open ticket" becomes
  ``ThreadHints(subject_refs=(ref,))`` (the router checks that the caller is its requester).
- A text joins the sender's open SMS ticket within ``window_seconds``
  (``ThreadHints(chat_thread="sms:+1…", chat_window_seconds=…)``); its key is the MessageSid.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime

from normalizer.contact import Attachment, Channel, Contact, Hints, Kind, Party, ThreadHints
from normalizer.intake import ContactRejectedError
from normalizer.phone import to_e164
from normalizer.refs import is_ref

__all__ = [
    "CALL_STEPS",
    "CallEvent",
    "SmsMessage",
    "contact_from_call",
    "contact_from_sms",
    "withheld_address",
]

CALL_STEPS = ("recording", "recording-file", "transcription", "callback")
MAX_TEXT_CHARS = 64 * 1024
MAX_NAME_CHARS = 200
_SID_RE = re.compile(r"^[A-Za-z0-9]{2,64}$")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something that happened on one call and belongs on its ticket.

    ``step`` is one of :data:`CALL_STEPS`; ``step_id`` is the RecordingSid or TranscriptionSid
    (empty for ``callback``). ``choice`` is what the caller picked, spoken as the menu says it
    (``"a broken device"``), ``None`` when they picked nothing.
    """

    call_sid: str
    step: str
    received_at: datetime
    caller: str = ""
    caller_name: str | None = None
    step_id: str = ""
    choice: str | None = None
    category: str | None = None
    kind: str | None = None
    add_to_ref: str | None = None
    after_hours: bool = False
    recording_url: str | None = None
    recording_seconds: int | None = None
    transcript: str | None = None
    note: str | None = None  # why a call-back ticket was made ("hung up during the menu")


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """One inbound text message as Twilio described it."""

    message_sid: str
    sender: str
    received_at: datetime
    body: str = ""
    media_urls: tuple[str, ...] = ()


def withheld_address(call_sid: str) -> str:
    """The stand-in identifier of a withheld caller: unique per call, undeliverable."""
    return f"withheld.{call_sid.lower()}@phone.invalid"


def contact_from_call(
    event: CallEvent,
    *,
    recording: Attachment | None = None,
    default_region: str = "US",
) -> Contact:
    """Build the contact for one step of a call. Raises :class:`ContactRejectedError`."""
    _check_time(event.received_at)
    call_sid = _sid(event.call_sid, "CallSid")
    if event.step not in CALL_STEPS:
        raise ContactRejectedError(f"unknown call step {event.step[:40]!r}", field="step")
    step_id = _sid(event.step_id, "step_id") if event.step != "callback" else ""
    external_id = f"{call_sid}:{event.step}" + (f":{step_id}" if step_id else "")
    phone = to_e164(event.caller, default_region)
    name = _clean(event.caller_name or "", MAX_NAME_CHARS).strip() or None
    sender = Party(phone=phone, name=name) if phone else _withheld(call_sid, name)
    kind = _kind(event.kind)
    refs: tuple[str, ...] = ()
    if event.add_to_ref and is_ref(event.add_to_ref):
        refs = (event.add_to_ref.upper(),)
    return Contact(
        channel=Channel.PHONE,
        external_id=external_id,
        sender=sender,
        received_at=event.received_at,
        subject=_call_subject(event, phone),
        text=_call_text(event, phone),
        attachments=(recording,) if recording is not None else (),
        thread=ThreadHints(call_id=call_sid, subject_refs=refs),
        hints=Hints(category=event.category or None, kind=kind),
        raw=json.dumps(_jsonable(event), sort_keys=True).encode("utf-8"),
        raw_type="application/json",
    )


def contact_from_sms(
    message: SmsMessage, *, window_seconds: float, default_region: str = "US"
) -> Contact:
    """Build the contact for one inbound text. Raises :class:`ContactRejectedError`."""
    _check_time(message.received_at)
    sid = _sid(message.message_sid, "MessageSid")
    phone = to_e164(message.sender, default_region)
    if phone is None:
        raise ContactRejectedError("the sender's number is withheld or invalid", field="From")
    body = _clean(message.body, MAX_TEXT_CHARS).strip()
    media = [u for u in message.media_urls if u.startswith(("https://", "http://"))][:10]
    if not body and not media:
        raise ContactRejectedError("the message is empty", field="Body")
    first_line = body.splitlines()[0] if body else "picture message"
    subject = f"SMS: {first_line[:80]}" + ("…" if len(first_line) > 80 else "")
    text = "\n".join([body, *(f"Attachment: {u}" for u in media)]).strip()
    return Contact(
        channel=Channel.SMS,
        external_id=sid,
        sender=Party(phone=phone),
        received_at=message.received_at,
        subject=subject,
        text=text,
        thread=ThreadHints(chat_thread=f"sms:{phone}", chat_window_seconds=window_seconds),
        raw=json.dumps(_jsonable(message), sort_keys=True).encode("utf-8"),
        raw_type="application/json",
    )


def _withheld(call_sid: str, name: str | None) -> Party:
    return Party(email=withheld_address(call_sid), name=name or "Withheld number")


def _call_subject(event: CallEvent, phone: str | None) -> str:
    who = phone or "withheld number"
    if event.add_to_ref:
        return f"Phone call from {who} about {event.add_to_ref.upper()}"
    if event.after_hours:
        return f"After-hours voicemail from {who}"
    if event.step == "callback":
        return f"Call back {who}" + (f": {event.choice}" if event.choice else "")
    return f"Phone call from {who}" + (f": {event.choice}" if event.choice else "")


def _call_text(event: CallEvent, phone: str | None) -> str:
    lines: list[str] = []
    if event.choice:
        lines.append(f"Menu choice: {_clean(event.choice, 200)}")
    if event.after_hours:
        lines.append("Called outside business hours.")
    if event.step == "callback":
        note = _clean(event.note or "The caller hung up before leaving a message.", 500)
        lines.append(note)
        lines.append(
            f"Please call back {phone}." if phone else "The number was withheld: no call-back."
        )
    if event.step in ("recording", "recording-file") and event.recording_url:
        seconds = f" ({event.recording_seconds} s)" if event.recording_seconds else ""
        lines.append(f"Recording{seconds}: {_clean(event.recording_url, 1000)}")
    if event.step == "transcription":
        transcript = _clean(event.transcript or "", MAX_TEXT_CHARS).strip()
        lines.append(f"Transcript: {transcript}" if transcript else "Transcript: (empty)")
    return "\n".join(lines)


def _sid(value: str, field: str) -> str:
    if not isinstance(value, str) or not _SID_RE.match(value):
        raise ContactRejectedError(f"{field} is missing or malformed", field=field)
    return value


def _kind(value: str | None) -> Kind | None:
    if not value:
        return None
    try:
        return Kind(value)
    except ValueError:
        raise ContactRejectedError(f"unknown kind {value[:40]!r}", field="kind") from None


def _clean(value: str, max_chars: int) -> str:
    return _CONTROLS.sub("", value)[:max_chars]


def _check_time(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")


def _jsonable(record: CallEvent | SmsMessage) -> dict[str, object]:
    data = asdict(record)
    data["received_at"] = record.received_at.isoformat()
    if isinstance(record, SmsMessage):
        data["media_urls"] = list(record.media_urls)
    return data
