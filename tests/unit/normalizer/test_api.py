from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from normalizer.api import MAX_TEXT_BYTES, contact_from_api
from normalizer.contact import Channel, Contact
from normalizer.intake import ContactRejectedError

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "from": {"email": "Alice@Example.ORG", "name": "Alice Liddell"},
        "subject": "Printer on fire",
        "text": "The printer on floor 3 is on fire.",
    }
    base.update(overrides)
    return base


def encoded(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode("utf-8")


def parse(data: dict[str, Any]) -> Contact:
    return contact_from_api(encoded(data), received_at=NOW)


def rejected_field(data: dict[str, Any]) -> str | None:
    with pytest.raises(ContactRejectedError) as info:
        parse(data)
    return info.value.field


def test_a_full_body_becomes_an_api_contact() -> None:
    raw = encoded(body(category="broken_device", external_id="form-123"))
    contact = contact_from_api(raw, received_at=NOW)
    assert contact.channel is Channel.API
    assert contact.external_id == "form-123"
    assert contact.sender.email == "alice@example.org"
    assert contact.sender.name == "Alice Liddell"
    assert contact.subject == "Printer on fire"
    assert contact.text == "The printer on floor 3 is on fire."
    assert contact.hints.category == "broken_device"
    assert contact.received_at == NOW
    assert contact.raw == raw
    assert contact.raw_type == "application/json"


def test_a_body_without_external_id_gets_a_fresh_id_every_time() -> None:
    first = parse(body())
    second = parse(body())
    assert first.external_id.startswith("api-")
    assert first.external_id != second.external_id


def test_a_phone_only_sender_is_converted_to_e164() -> None:
    contact = parse(body(**{"from": {"phone": "(415) 555-2671"}}))
    assert contact.sender.phone == "+14155552671"
    assert contact.sender.email is None


def test_null_optional_fields_count_as_absent() -> None:
    data = body(category=None, external_id=None)
    data["from"] = {"email": "a@example.org", "phone": None, "name": None}
    contact = parse(data)
    assert contact.hints.category is None
    assert contact.sender.name is None


def test_line_breaks_in_the_subject_are_folded_to_spaces() -> None:
    contact = parse(body(subject="Printer\r\nBcc: evil@example.net"))
    assert contact.subject == "Printer Bcc: evil@example.net"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(**{"from": None}), "from"),
        ({"subject": "x", "text": "y"}, "from"),
        (body(**{"from": "alice@example.org"}), "from"),
        (body(**{"from": {}}), "from"),
        (body(**{"from": {"name": "Nobody"}}), "from"),
        (body(**{"from": {"email": "   "}}), "from"),
        (body(**{"from": {"email": "not-an-address"}}), "from.email"),
        (body(**{"from": {"email": "a@b@example.org"}}), "from.email"),
        (body(**{"from": {"email": "a@example.org, b@example.org"}}), "from.email"),
        (body(**{"from": {"email": "a@example.org\r\nBcc: x@y.org"}}), "from.email"),
        (body(**{"from": {"email": 42}}), "from.email"),
        (body(**{"from": {"phone": "not a number"}}), "from.phone"),
        (body(**{"from": {"phone": "123"}}), "from.phone"),
        (body(**{"from": {"phone": ["+14155552671"]}}), "from.phone"),
        (body(**{"from": {"email": "a@example.org", "name": 7}}), "from.name"),
        (body(**{"from": {"email": "a@example.org", "name": "x" * 201}}), "from.name"),
        (body(**{"from": {"email": "a@example.org", "mail": "b@example.org"}}), "from.mail"),
        (body(subject=1), "subject"),
        (body(subject="x" * 999), "subject"),
        (body(subject="nul\x00byte"), "subject"),
        (body(text=["a"]), "text"),
        (body(text="\ud800 lone surrogate"), "text"),
        (body(subject="", text="   "), "text"),
        (body(subject=None, text=None), "text"),
        (body(text="x" * (MAX_TEXT_BYTES + 1)), "text"),
        (body(text="é" * (MAX_TEXT_BYTES // 2 + 1)), "text"),
        (body(category={"a": 1}), "category"),
        (body(category="c" * 101), "category"),
        (body(external_id=12), "external_id"),
        (body(external_id=""), "external_id"),
        (body(external_id="x" * 201), "external_id"),
        (body(external_id="line\nbreak"), "external_id"),
        (body(extrenal_id="typo"), "extrenal_id"),
    ],
)
def test_invalid_bodies_are_rejected_naming_the_field(data: dict[str, Any], field: str) -> None:
    assert rejected_field(data) == field


def test_text_of_exactly_the_limit_is_accepted() -> None:
    contact = parse(body(text="x" * MAX_TEXT_BYTES))
    assert len(contact.text) == MAX_TEXT_BYTES


def test_a_subject_alone_is_enough() -> None:
    contact = parse(body(text=None))
    assert contact.text == ""


def test_a_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        contact_from_api(encoded(body()), received_at=datetime(2026, 1, 1))
