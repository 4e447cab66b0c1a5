"""Calls and texts -> Contact: identity, thread keys, idempotency keys, hints, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from normalizer.contact import Attachment, Channel, Kind
from normalizer.intake import ContactRejectedError
from normalizer.telephony import (
    CallEvent,
    SmsMessage,
    contact_from_call,
    contact_from_sms,
    withheld_address,
)

AT = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
CALL = "CA" + "a" * 32
REC = "RE" + "b" * 32


def event(**changes: object) -> CallEvent:
    fields: dict[str, object] = {
        "call_sid": CALL,
        "step": "recording",
        "step_id": REC,
        "received_at": AT,
        "caller": "+12025550100",
        "choice": "a broken device",
        "category": "broken_device",
        "kind": "incident",
        "recording_url": "https://api.twilio.com/x/Recordings/" + REC,
        "recording_seconds": 12,
    }
    fields.update(changes)
    return CallEvent(**fields)  # type: ignore[arg-type]


def test_a_recording_becomes_a_phone_contact_on_the_calls_thread() -> None:
    contact = contact_from_call(event())
    assert contact.channel is Channel.PHONE
    assert contact.external_id == f"{CALL}:recording:{REC}"
    assert contact.sender.phone == "+12025550100"
    assert contact.thread.call_id == CALL
    assert contact.hints.category == "broken_device"
    assert contact.hints.kind is Kind.INCIDENT
    assert contact.subject == "Phone call from +12025550100: a broken device"
    assert "Recording (12 s): https://api.twilio.com/x/Recordings/" + REC in contact.text
    assert json.loads(contact.raw)["call_sid"] == CALL


def test_each_step_of_a_call_has_its_own_idempotency_key() -> None:
    keys = {
        contact_from_call(event(step="recording")).external_id,
        contact_from_call(event(step="recording-file")).external_id,
        contact_from_call(event(step="transcription", step_id="TR1")).external_id,
        contact_from_call(event(step="callback", step_id="")).external_id,
    }
    assert keys == {
        f"{CALL}:recording:{REC}",
        f"{CALL}:recording-file:{REC}",
        f"{CALL}:transcription:TR1",
        f"{CALL}:callback",
    }


def test_a_national_caller_id_is_stored_in_e164() -> None:
    assert contact_from_call(event(caller="(202) 555-0100")).sender.phone == "+12025550100"


@pytest.mark.parametrize("caller", ["client:alice", "sip:bob@pbx.example.com"])
def test_a_caller_id_that_is_no_number_is_the_callers_identity(caller: str) -> None:
    contact = contact_from_call(event(caller=caller, step="callback", step_id=""))
    assert (contact.sender.phone, contact.sender.sender_id) == (None, caller)
    assert contact.subject.startswith(f"Call back {caller}")
    assert f"The caller id {caller} is no phone number: no call-back." in contact.text


def test_a_withheld_caller_gets_an_undeliverable_identity_of_their_own() -> None:
    first = contact_from_call(event(caller="anonymous"))
    second = contact_from_call(event(caller="+266696687", call_sid="CA" + "c" * 32))
    assert first.sender.phone is None
    assert first.sender.email == withheld_address(CALL)
    assert first.sender.email.endswith("@phone.invalid")
    assert first.sender.email != second.sender.email
    assert "withheld number" in first.subject


def test_the_recording_file_is_attached() -> None:
    audio = Attachment("RE1.wav", "audio/x-wav", "0" * 64, b"RIFF")
    contact = contact_from_call(event(step="recording-file"), recording=audio)
    assert contact.attachments == (audio,)


def test_a_transcript_is_the_text() -> None:
    contact = contact_from_call(event(step="transcription", step_id="TR1", transcript="Help\x00!"))
    assert "Transcript: Help!" in contact.text


def test_a_call_back_names_the_number_to_call() -> None:
    contact = contact_from_call(event(step="callback", step_id="", note="Hung up."))
    assert contact.subject == "Call back +12025550100: a broken device"
    assert "Hung up.\nPlease call back +12025550100." in contact.text


def test_adding_to_an_open_ticket_is_a_subject_ref() -> None:
    contact = contact_from_call(event(add_to_ref="sd-42", category=None, kind=None))
    assert contact.thread.subject_refs == ("SD-42",)
    assert contact.subject == "Phone call from +12025550100 about SD-42"


def test_a_malformed_ref_is_ignored() -> None:
    assert contact_from_call(event(add_to_ref="SD-42; drop")).thread.subject_refs == ()


@pytest.mark.parametrize("ref", ["SD-\uff14\uff12", "SD-\u0967"])
def test_a_ref_with_non_ascii_digits_is_ignored(ref: str) -> None:
    assert contact_from_call(event(add_to_ref=ref)).thread.subject_refs == ()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"call_sid": ""}, "CallSid"),
        ({"call_sid": "CA/../x"}, "CallSid"),
        ({"step": "menu"}, "step"),
        ({"step_id": ""}, "step_id"),
        ({"kind": "problem"}, "kind"),
    ],
)
def test_bad_call_data_is_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ContactRejectedError) as caught:
        contact_from_call(event(**changes))
    assert caught.value.field == field


def test_a_naive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        contact_from_call(event(received_at=datetime(2026, 1, 1)))


def test_a_text_joins_the_senders_sms_conversation_within_the_window() -> None:
    message = SmsMessage("SM1", "+12025550100", AT, "VPN down\nsince 9am")
    contact = contact_from_sms(message, window_seconds=3600)
    assert contact.channel is Channel.SMS
    assert contact.external_id == "SM1"
    assert contact.thread.chat_thread == "sms:+12025550100"
    assert contact.thread.chat_window_seconds == 3600
    assert contact.subject == "SMS: VPN down"
    assert contact.text == "VPN down\nsince 9am"


def test_a_picture_message_keeps_its_media_urls() -> None:
    message = SmsMessage("SM1", "+12025550100", AT, "", ("https://api.twilio.com/m/1", "ftp://x"))
    contact = contact_from_sms(message, window_seconds=60)
    assert contact.subject == "SMS: picture message"
    assert contact.text == "Attachment: https://api.twilio.com/m/1"


def test_a_text_without_a_message_sid_is_refused() -> None:
    with pytest.raises(ContactRejectedError) as caught:
        contact_from_sms(SmsMessage("", "+12025550100", AT, "hi"), window_seconds=60)
    assert caught.value.field == "MessageSid"


@pytest.mark.parametrize(
    ("sender", "phone", "sender_id"),
    [
        ("+447700900123", "+447700900123", None),  # a possible number the library calls invalid
        ("72345", None, "72345"),  # a short code
        ("ACME", None, "ACME"),  # an alphanumeric sender id
        ("client:alice", None, "client:alice"),
        ("sip:bob@pbx.example.com", None, "sip:bob@pbx.example.com"),
    ],
)
def test_a_text_from_any_sender_id_is_kept(sender: str, phone: str | None, sender_id: str) -> None:
    contact = contact_from_sms(SmsMessage("SM1", sender, AT, "printer jam"), window_seconds=60)
    assert (contact.sender.phone, contact.sender.sender_id) == (phone, sender_id)
    assert contact.thread.chat_thread == f"sms:{phone or sender_id}"
    assert contact.text == "printer jam"


def test_a_text_from_a_withheld_sender_is_kept_under_an_identity_of_its_own() -> None:
    first = contact_from_sms(SmsMessage("SM1", "anonymous", AT, "hi"), window_seconds=60)
    second = contact_from_sms(SmsMessage("SM2", "+266696687", AT, "hi"), window_seconds=60)
    assert first.sender.phone is None and first.sender.sender_id is None
    assert first.sender.email == withheld_address("SM1")
    assert second.sender.email == withheld_address("SM2")
    assert first.thread.chat_thread != second.thread.chat_thread


def test_an_empty_text_is_kept_and_says_so() -> None:
    contact = contact_from_sms(SmsMessage("SM1", "+12025550100", AT, "  "), window_seconds=60)
    assert contact.subject == "SMS: (empty)"
    assert contact.text == "(The text was empty.)"


def test_control_characters_in_a_text_are_removed() -> None:
    contact = contact_from_sms(
        SmsMessage("SM1", "+12025550100", AT, "a\x00b\x1b[2J\r\nc\td"), window_seconds=60
    )
    assert contact.text == "ab[2J\nc\td"
