"""Mail content: inline cid: images kept and named, remote images never loaded, oversized
attachments kept as metadata with the reason."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from normalizer.contact import Attachment, Channel, Contact, Party
from normalizer.email import contact_from_email
from normalizer.html import html_to_text
from normalizer.limits import AttachmentLimit

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def html_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = "servicedesk@example.com"
    msg["Subject"] = "Screenshot"
    msg.set_content("plain fallback")
    msg.add_alternative(
        '<p>The error:<img src="cid:shot1@example.org" alt="screenshot"></p>'
        '<p><img src="https://tracker.example.net/pixel.gif?u=alice" width="1"></p>',
        subtype="html",
    )
    html_part = msg.get_payload()[1]
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<shot1@example.org>")
    raw = msg.as_bytes()
    # no text/plain: the HTML is the body
    return raw.replace(b"plain fallback", b"")


def test_an_inline_image_is_an_attachment_named_where_it_was() -> None:
    contact = contact_from_email(html_mail())
    [image] = [a for a in contact.attachments if a.content_type == "image/png"]
    assert image.content_id == "shot1@example.org"
    assert image.data == PNG
    assert f"The error: [image: {image.filename}]" in contact.text


def test_a_remote_image_is_never_loaded_and_says_so() -> None:
    text = html_to_text('<p>Hi<img src="https://tracker.example.net/p.gif" alt="logo"></p>')
    assert text == "Hi [remote image not loaded: logo, tracker.example.net]"


@pytest.mark.parametrize(
    "img",
    [
        '<img src="javascript:alert(1)">',
        '<img src="x" onerror="alert(1)">',
        '<img src="data:image/png;base64,AAAA">',
        "<img>",
    ],
)
def test_other_images_leave_no_url_behind(img: str) -> None:
    text = html_to_text(f"<p>a{img}b</p>")
    assert "javascript" not in text and "alert" not in text and "data:" not in text
    assert text.replace(" ", "") == "ab"


def attachment(size: int) -> Attachment:
    data = b"x" * size
    return Attachment("big.iso", "application/octet-stream", hashlib.sha256(data).hexdigest(), data)


def contact_with(*files: Attachment) -> Contact:
    return Contact(
        channel=Channel.EMAIL,
        external_id="m1",
        sender=Party(email="a@example.org"),
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
        attachments=files,
    )


def test_an_attachment_over_the_limit_is_kept_as_metadata_with_the_reason() -> None:
    small, big = attachment(100), attachment(3000)
    limited = AttachmentLimit(2048)(contact_with(small, big))
    kept, meta = limited.attachments
    assert kept is small
    assert meta.data == b"" and meta.size == 3000 and meta.sha256 == big.sha256
    assert meta.omitted == "over 2 KiB: kept in the raw message only"
    assert meta.filename == "big.iso"


def test_contacts_within_the_limit_are_left_alone() -> None:
    contact = contact_with(attachment(10))
    assert AttachmentLimit(2048)(contact) is contact
