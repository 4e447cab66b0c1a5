"""``parse_if_cheap`` tells mail whose conversion walks little text in Python (an attachment
decodes in C) from mail that walks much (HTML to sanitise, however it is encoded)."""

from __future__ import annotations

import base64
import random

from normalizer.email import contact_from_email, parse_if_cheap

LIMIT = 32 * 1024
PDF = random.Random(3).randbytes(72_000)


def mail(*parts: tuple[str, str, bytes], boundary: str = "B") -> bytes:
    out = [
        "From: Alice <alice@example.org>\r\nTo: desk@example.com\r\nSubject: s\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
    ]
    for ctype, cte, body in parts:
        out.append(f"--{boundary}\r\nContent-Type: {ctype}\r\n")
        out.append(f"Content-Transfer-Encoding: {cte}\r\n\r\n{body.decode()}\r\n")
    return "".join(out).encode() + f"--{boundary}--\r\n".encode()


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


HELLO = ("text/plain", "7bit", b"Hello, the PDF is attached.")
HTML = ("<p>" + "printer jammed on floor 3 " * 1_800 + "</p>").encode()


def test_a_mail_that_is_mostly_an_attachment_is_parsed() -> None:
    raw = mail(HELLO, ("application/pdf", "base64", b64(PDF)))
    assert len(raw) > 3 * LIMIT
    parsed = parse_if_cheap(raw, LIMIT)
    assert parsed is not None
    contact = contact_from_email(parsed)
    assert contact == contact_from_email(raw, received_at=contact.received_at)
    assert [a.data for a in contact.attachments] == [PDF]


def test_html_beyond_the_limit_is_not_parsed_whatever_its_encoding() -> None:
    for cte, body in (("7bit", HTML), ("base64", b64(HTML))):
        assert parse_if_cheap(mail(("text/html", cte, body)), LIMIT) is None, cte


def test_an_attachment_inside_an_attached_message_counts_as_text() -> None:
    inner = mail(HELLO, ("application/pdf", "base64", b64(PDF)), boundary="I")  # serialised
    raw = mail(HELLO, ("message/rfc822", "7bit", inner))
    assert parse_if_cheap(raw, LIMIT) is None


def test_small_mail_is_parsed_without_a_second_look() -> None:
    raw = mail(("text/html", "7bit", HTML[:20_000]))
    parsed = parse_if_cheap(raw, LIMIT)
    assert parsed is not None and parsed.raw is raw
