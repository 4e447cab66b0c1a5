"""``contact_from_webform``: one submitted /report form -> one Contact, or a refusal naming the
form's own field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from normalizer.contact import Channel
from normalizer.intake import ContactRejectedError
from normalizer.webform import UploadedFile, contact_from_webform

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
DESK = "servicedesk@example.com"
FIELDS = {"name": "Bob", "email": "Bob@Example.org", "description": "Laptop dead\nsince Monday"}


def convert(fields: dict[str, str] = FIELDS, files: list[UploadedFile] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    return contact_from_webform(
        fields, files or [], form_id=kw.pop("form_id", "nonce1"), received_at=NOW,
        desk_address=DESK, **kw,
    )  # fmt: skip


def test_a_report_becomes_a_web_contact_addressed_to_the_desk() -> None:
    contact = convert()

    assert contact.channel is Channel.WEB
    assert contact.external_id == "web-nonce1"
    assert contact.sender.email == "bob@example.org" and contact.sender.name == "Bob"
    assert contact.subject == "Laptop dead"
    assert contact.text == "Laptop dead\nsince Monday"
    assert contact.visible_recipients == (DESK,) and contact.recipients == (DESK,)
    assert contact.raw_type == "application/json" and b"Laptop dead" in contact.raw


def test_a_long_first_line_is_shortened_for_the_subject() -> None:
    contact = convert({**FIELDS, "description": "x" * 500})

    assert len(contact.subject) == 120 and contact.subject.endswith("…")
    assert contact.text == "x" * 500


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"description": "help"}, "email"),
        ({"email": "   ", "description": "help"}, "email"),
        ({"email": "not-an-address", "description": "help"}, "email"),
        ({"email": "a@example.org\r\nBcc: x@evil.example", "description": "help"}, "email"),
        ({"email": "a@example.org", "description": "  "}, "description"),
        ({"email": "a@example.org", "description": "bell \x07"}, "description"),
        ({"email": "a@example.org", "name": "x" * 201, "description": "help"}, "name"),
    ],
)
def test_a_bad_field_is_refused_by_its_form_name(fields: dict[str, str], field: str) -> None:
    with pytest.raises(ContactRejectedError) as refused:
        convert(fields)

    assert refused.value.field == field
    assert "from." not in str(refused.value)


def test_a_category_the_form_does_not_offer_is_refused() -> None:
    with pytest.raises(ContactRejectedError) as refused:
        convert({**FIELDS, "category": "payroll"}, categories=["broken_device"])

    assert refused.value.field == "category"
    assert (
        convert(
            {**FIELDS, "category": "broken_device"}, categories=["broken_device"]
        ).hints.category
        == "broken_device"
    )


def test_an_attachment_is_named_safely_and_typed_by_its_name_not_the_browser() -> None:
    files = [
        UploadedFile("../../etc/passwd\u202egpj.exe", b"MZ"),
        UploadedFile("shot.png", b"\x89PNG"),
    ]

    contact = convert(files=files)

    names = [a.filename for a in contact.attachments]
    assert "/" not in names[0] and "\u202e" not in names[0] and names[0].endswith(".exe")
    assert contact.attachments[0].content_type != "image/jpeg"
    assert names[1] == "shot.png" and contact.attachments[1].content_type == "image/png"
    assert contact.attachments[1].size == 4
