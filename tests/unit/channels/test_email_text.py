"""``channels.outbound.email_text``: how the desk's mails read, worded from the router's facts."""

from __future__ import annotations

from typing import Any

import pytest

from channels.outbound import DeliveryError
from channels.outbound.email import build_message
from channels.outbound.email_text import (
    DEFAULT_SINGLE_ADDRESS_NOTICE,
    EmailWording,
    mail_text,
    reply_subject,
    tagged_subject,
)

WORDING = EmailWording()


def facts(event: str, **kw: Any) -> dict[str, Any]:
    """A payload as the router queues it now: the event and its facts, no wording."""
    return {
        "event": event,
        "to": "alice@example.org",
        "from_address": "servicedesk@example.com",
        "from_name": "IT Service Desk",
        "ticket_ref": "SD-42",
        "ticket_subject": "Printer on fire",
        "message_id": "spoc.42.ab12@example.com",
        "in_reply_to": "orig@mail.example.org",
        "references": ["orig@mail.example.org"],
        "auto_submitted": None,
    } | kw


def test_the_ack_tags_the_subject_and_names_the_ref_and_the_requester() -> None:
    said = mail_text(facts("ack", requester_name="Alice"), WORDING)
    assert said.subject == "[SD-42] Printer on fire"
    assert said.text.startswith("Hello Alice,\n\n")
    assert "logged as SD-42: Printer on fire." in said.text
    assert "keep [SD-42] in the subject" in said.text
    assert said.text.endswith("-- \nIT Service Desk\n")


def test_an_ack_without_a_name_or_subject_still_reads() -> None:
    said = mail_text(facts("ack", requester_name=None, ticket_subject=""), WORDING)
    assert said.subject == "[SD-42]"
    assert said.text.startswith("Hello,\n\n") and "logged as SD-42." in said.text


@pytest.mark.parametrize(
    "subject", ["[SD-42] Printer on fire", "Re: [sd-42] Printer on fire", "Printer [SD-42]"]
)
def test_the_ref_tag_is_not_doubled(subject: str) -> None:
    assert tagged_subject("SD-42", subject) == subject
    assert mail_text(facts("ack", ticket_subject=subject), WORDING).subject.count("42") == 1


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Printer on fire", "Re: [SD-42] Printer on fire"),
        ("Re: Printer on fire", "Re: [SD-42] Re: Printer on fire"),
        ("RE: [SD-42] Printer on fire", "RE: [SD-42] Printer on fire"),
        ("", "Re: [SD-42]"),
    ],
)
def test_a_reply_says_re_once(subject: str, expected: str) -> None:
    assert reply_subject("SD-42", subject) == expected
    said = mail_text(facts("reply", text="Unplug it.", ticket_subject=subject), WORDING)
    assert said.subject == expected and said.text == "Unplug it."


def test_a_reply_is_the_agents_words_as_written() -> None:
    words = "Hello Alice,\n\nplease try <Ctrl> & restart.\n"
    assert mail_text(facts("reply", text=words), WORDING).text == words


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"status": "resolved", "text": "new board fitted"}, "SD-42 is resolved: new board fitted"),
        ({"status": "closed", "text": ""}, "SD-42 is closed."),
    ],
)
def test_a_status_change_reads_as_a_sentence_in_the_thread(
    kw: dict[str, str], expected: str
) -> None:
    said = mail_text(facts("status", **kw), WORDING)
    assert said.subject == "Re: [SD-42] Printer on fire" and said.text == expected


def test_the_one_address_paragraph_comes_first_when_the_ack_asks_for_it() -> None:
    notice = {"address": "servicedesk@example.com", "legacy": "helpdesk@example.com"}
    said = mail_text(facts("ack", single_address_notice=notice), WORDING)
    expected = DEFAULT_SINGLE_ADDRESS_NOTICE.format(**notice)
    assert said.text.startswith(expected + "\n\nHello,")
    assert "helpdesk@example.com" in said.text


def test_the_configured_notice_is_used_and_none_tells_nothing() -> None:
    notice = {"address": "servicedesk@example.com", "legacy": "old@example.com"}
    payload = facts("ack", single_address_notice=notice)
    own = EmailWording(single_address_notice="Write to {address}, not {legacy}.")
    assert mail_text(payload, own).text.startswith(
        "Write to servicedesk@example.com, not old@example.com.\n\n"
    )
    assert "old@example.com" not in mail_text(payload, EmailWording(None)).text
    assert "old@example.com" not in mail_text(facts("ack"), WORDING).text


def test_a_payload_worded_before_the_upgrade_is_sent_as_it_was_written() -> None:
    old = facts("ack", subject="[SD-7] Old", text="Already worded.")
    del old["event"]
    msg = build_message(old)
    assert msg["Subject"] == "[SD-7] Old"
    assert msg.get_content().strip() == "Already worded."


def test_the_message_carries_the_worded_subject_and_body() -> None:
    msg = build_message(facts("reply", text="Unplug it."))
    assert msg["Subject"] == "Re: [SD-42] Printer on fire"
    assert msg.get_content().strip() == "Unplug it."
    assert msg["In-Reply-To"] == "<orig@mail.example.org>"


def test_an_event_this_version_cannot_word_is_a_permanent_error() -> None:
    with pytest.raises(DeliveryError) as caught:
        build_message(facts("survey"))
    assert caught.value.permanent
