"""Fax-to-email: a mail from a fax service is a fax from the caller's number, pages counted."""

from __future__ import annotations

import io
import re
from email.message import EmailMessage

import pytest
from PIL import Image
from pypdf import PdfWriter

from normalizer.contact import Attachment, AutoClass, Channel, off_loop
from normalizer.email import contact_from_email
from normalizer.fax import FaxRules, FaxStep, page_count
from normalizer.limits import AttachmentLimit

RULES = FaxRules(senders=("*@fax.example.net", "scanner@office.example.com"))
STEP = FaxStep(RULES)


def pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tiff(pages: int) -> bytes:
    frames = [Image.new("1", (64, 64), color=i % 2) for i in range(pages)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def fax_mail(
    *,
    sender: str = "noreply@fax.example.net",
    subject: str = "Fax from +1 (415) 555-0100",
    body: str = "You have received a 3 page fax.",
    document: tuple[str, str, bytes] | None = ("fax.pdf", "application/pdf", pdf(3)),
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "servicedesk@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<fax-1@fax.example.net>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if document is not None:
        filename, ctype, data = document
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def test_a_mail_from_a_fax_service_is_a_fax_from_the_callers_number() -> None:
    contact = STEP(contact_from_email(fax_mail()))
    assert contact.channel is Channel.FAX
    assert contact.sender.phone == "+14155550100"
    assert contact.sender.email is None
    assert [a.filename for a in contact.attachments] == ["fax.pdf"]
    assert contact.text == "You have received a 3 page fax.\n\nFax document: fax.pdf (3 pages)"
    assert contact.subject == "Fax from +1 (415) 555-0100"


def test_a_tiff_fax_has_its_pages_counted() -> None:
    contact = STEP(contact_from_email(fax_mail(document=("fax.tif", "image/tiff", tiff(2)))))
    assert contact.text.endswith("Fax document: fax.tif (2 pages)")


def test_the_number_may_be_in_the_cover_text() -> None:
    raw = fax_mail(subject="New fax received", body="Fax from 415-555-0199, 1 page.")
    assert STEP(contact_from_email(raw)).sender.phone == "+14155550199"


def test_a_fax_without_a_readable_number_gets_an_identity_of_its_own() -> None:
    contact = STEP(contact_from_email(fax_mail(subject="New fax", body="A fax for you.")))
    assert contact.channel is Channel.FAX
    assert contact.sender.phone is None
    assert contact.sender.email is not None and contact.sender.email.endswith("@fax.invalid")


def test_fax_services_are_exempt_from_the_auto_generated_filter() -> None:
    raw = fax_mail(headers={"Auto-Submitted": "auto-generated", "Precedence": "bulk"})
    assert contact_from_email(raw).is_automatic
    assert STEP(contact_from_email(raw)).auto is AutoClass.HUMAN


def test_a_mail_that_merely_says_fax_from_stays_email() -> None:
    raw = fax_mail(sender="mallory@example.org")
    contact = STEP(contact_from_email(raw))
    assert contact.channel is Channel.EMAIL
    assert contact.sender.email == "mallory@example.org"
    assert "Fax document" not in contact.text


def test_the_envelope_sender_may_be_the_fax_service() -> None:
    raw = fax_mail(sender="Office Scanner <scanner@office.example.com>")
    assert STEP(contact_from_email(raw)).channel is Channel.FAX
    raw = fax_mail(sender="someone@example.org")
    via_envelope = STEP(contact_from_email(raw, envelope_sender="bounce@FAX.example.net"))
    assert via_envelope.channel is Channel.FAX


def test_a_broken_document_is_kept_with_its_pages_unknown() -> None:
    raw = fax_mail(document=("fax.pdf", "application/pdf", b"%PDF-1.4 garbage"))
    contact = STEP(contact_from_email(raw))
    assert [a.filename for a in contact.attachments] == ["fax.pdf"]
    assert contact.text.endswith("Fax document: fax.pdf (pages unknown)")


def test_a_fax_without_a_document_says_so() -> None:
    contact = STEP(contact_from_email(fax_mail(document=None)))
    assert contact.text.endswith("Fax document: none attached")


@pytest.mark.parametrize(
    ("data", "ctype", "pages"),
    [(pdf(1), "application/pdf", 1), (tiff(4), "image/tiff", 4), (b"x", "text/plain", None)],
)
def test_page_count(data: bytes, ctype: str, pages: int | None) -> None:
    assert page_count(Attachment("doc", ctype, "0" * 64, data)) == pages


def test_a_custom_subject_pattern_reads_the_number() -> None:
    step = FaxStep(
        FaxRules(senders=RULES.senders, subject_pattern=re.compile(r"CID:(?P<number>\+\d+)"))
    )
    contact = step(contact_from_email(fax_mail(subject="Incoming CID:+442071838750")))
    assert contact.sender.phone == "+442071838750"


def test_words_after_the_number_in_the_subject_are_not_part_of_it() -> None:
    raw = fax_mail(subject="Fax from +1 415 555 0100 (2 pages)")
    assert STEP(contact_from_email(raw)).sender.phone == "+14155550100"


def test_the_fax_step_says_it_may_stall_an_event_loop_and_the_attachment_limit_does_not() -> None:
    # The SMTP channel runs such steps on a thread when it converted the mail on its loop:
    # counting a 40-page PDF's pages takes ~20 ms.
    assert off_loop([AttachmentLimit(1 << 20), FaxStep(RULES)])
    assert not off_loop([AttachmentLimit(1 << 20), lambda contact: contact])
