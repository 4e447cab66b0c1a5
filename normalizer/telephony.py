"""Phone calls and text messages -> :class:`Contact`. Pure: no I/O, no clock, no framework.

The Twilio channel (``channels/twilio``) reads Twilio's form fields into the primitive records
here -- :class:`CallEvent` for something that happened on a call, :class:`SmsMessage` for a text
-- and these converters build the contact. The records are plain data, so the channel can also
write them to its spool when the database is down and replay them later.

Rules:

- The caller or texter is read with :func:`normalizer.phone.read_caller_id`: a possible number
  becomes E.164 (``+15550100``, ``default_region`` for national numbers) and is the requester's
  phone; a caller id that is no number (a short code, ``ACME``, ``client:alice``, ``sip:bob@pbx``)
  is kept as ``Party.sender_id``. Only a withheld caller (``anonymous``, Twilio's stand-in
  numbers ...) has neither; a call or text from one still makes a contact, under a requester of
  its own whose only identifier is ``withheld.<CallSid|MessageSid>@phone.invalid`` (the
  ``.invalid`` TLD can never receive mail, and no two withheld contacts share a requester).
  Nothing is refused for its sender, and an empty text is kept too.
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
from normalizer.phone import CallerId, read_caller_id
from normalizer.refs import is_ref
from normalizer.text import clean_line, clean_text

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
    caller = read_caller_id(event.caller, default_region)
    name = clean_line(event.caller_name or "")[:MAX_NAME_CHARS] or None
    sender = _party(caller, name) or _withheld(call_sid, name)
    kind = _kind(event.kind)
    refs: tuple[str, ...] = ()
    if event.add_to_ref and is_ref(event.add_to_ref):
        refs = (event.add_to_ref.upper(),)
    return Contact(
        channel=Channel.PHONE,
        external_id=external_id,
        sender=sender,
        received_at=event.received_at,
        subject=_call_subject(event, caller),
        text=_call_text(event, caller),
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
    caller = read_caller_id(message.sender, default_region)
    sender = _party(caller, None) or _withheld(sid, None)
    # A text from a withheld sender is its own conversation: nothing to continue it by.
    conversation = caller.phone or caller.sender_id or f"withheld:{sid}"
    body = _clean(message.body, MAX_TEXT_CHARS).strip()
    media = [u for u in message.media_urls if u.startswith(("https://", "http://"))][:10]
    first_line = body.splitlines()[0] if body else ("picture message" if media else "(empty)")
    subject = f"SMS: {first_line[:80]}" + ("…" if len(first_line) > 80 else "")
    text = "\n".join([body, *(f"Attachment: {u}" for u in media)]).strip()
    return Contact(
        channel=Channel.SMS,
        external_id=sid,
        sender=sender,
        received_at=message.received_at,
        subject=subject,
        text=text or "(The text was empty.)",
        thread=ThreadHints(chat_thread=f"sms:{conversation}", chat_window_seconds=window_seconds),
        raw=json.dumps(_jsonable(message), sort_keys=True).encode("utf-8"),
        raw_type="application/json",
    )


def _party(caller: CallerId, name: str | None) -> Party | None:
    """The sender for a number or a raw sender id; None for a withheld caller."""
    if caller.withheld:
        return None
    return Party(phone=caller.phone, sender_id=caller.sender_id, name=name)


def _withheld(call_sid: str, name: str | None) -> Party:
    return Party(email=withheld_address(call_sid), name=name or "Withheld number")


def _call_subject(event: CallEvent, caller: CallerId) -> str:
    who = caller.phone or caller.sender_id or "withheld number"
    if event.add_to_ref:
        return f"Phone call from {who} about {event.add_to_ref.upper()}"
    if event.after_hours:
        return f"After-hours voicemail from {who}"
    if event.step == "callback":
        return f"Call back {who}" + (f": {event.choice}" if event.choice else "")
    return f"Phone call from {who}" + (f": {event.choice}" if event.choice else "")


def _call_text(event: CallEvent, caller: CallerId) -> str:
    lines: list[str] = []
    if event.choice:
        lines.append(f"Menu choice: {_clean(event.choice, 200)}")
    if event.after_hours:
        lines.append("Called outside business hours.")
    if event.step == "callback":
        note = _clean(event.note or "The caller hung up before leaving a message.", 500)
        lines.append(note)
        if caller.phone:
            lines.append(f"Please call back {caller.phone}.")
        elif caller.sender_id:
            lines.append(f"The caller id {caller.sender_id} is no phone number: no call-back.")
        else:
            lines.append("The number was withheld: no call-back.")
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
    return clean_text(value)[:max_chars]


def _check_time(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")


def _jsonable(record: CallEvent | SmsMessage) -> dict[str, object]:
    data = asdict(record)
    data["received_at"] = record.received_at.isoformat()
    if isinstance(record, SmsMessage):
        data["media_urls"] = list(record.media_urls)
    return data
