"""What of a message is the same on every delivery path (SMTP, an IMAP journal copy, a file)."""

from __future__ import annotations

import pytest

from normalizer.delivery import delivery_independent_bytes, header_field
from normalizer.email import contact_from_email

ORIGINAL = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: servicedesk@example.com\r\n"
    b"Subject: VPN broken\r\n"
    b"Date: Sun, 22 Nov 2026 15:00:00 +0000\r\n"
    b"\r\n"
    b"The VPN client says certificate expired.\r\n"
)
SMTP_HOP = (
    b"Received: from mail.example.org (mail.example.org [192.0.2.1])\r\n"
    b"\tby mx1; Sun, 22 Nov 2026 15:00:01 +0000\r\n"
)
MAILBOX_DELIVERY = (
    b"Return-Path: <bob@example.org>\r\n"
    b"Delivered-To: journal@example.com\r\n"
    b"X-Spam-Status: No, score=-1.0\r\n"
    b"Authentication-Results: mx2; spf=pass\r\n"
    b"Received: from mx1 by mx2; Sun, 22 Nov 2026 15:00:02 +0000\r\n"
)


def synthetic(raw: bytes) -> str:
    return contact_from_email(raw).external_id


def test_smtp_and_journal_copies_without_message_id_get_one_synthetic_id() -> None:
    by_smtp = SMTP_HOP + ORIGINAL
    in_journal = MAILBOX_DELIVERY + SMTP_HOP + ORIGINAL
    assert synthetic(by_smtp) == synthetic(in_journal) == synthetic(ORIGINAL)


def test_line_ends_and_trailing_blank_lines_do_not_change_the_id() -> None:
    as_file = ORIGINAL.replace(b"\r\n", b"\n") + b"\n\n"
    assert synthetic(as_file) == synthetic(ORIGINAL)


@pytest.mark.parametrize(
    "change",
    [
        (b"VPN broken", b"VPN still broken"),  # the subject the author wrote
        (b"certificate expired", b"certificate revoked"),  # the body
        (b"bob@example.org>\r\nTo", b"bob@example.org>\r\nCc: x@example.org\r\nTo"),  # a field
    ],
)
def test_any_change_by_the_author_gives_another_id(change: tuple[bytes, bytes]) -> None:
    assert synthetic(ORIGINAL.replace(*change)) != synthetic(ORIGINAL)


def test_a_trace_name_inside_a_folded_field_is_not_a_field_of_its_own() -> None:
    folded = ORIGINAL.replace(b"Subject: VPN broken", b"Subject: VPN broken\r\n Received: no")
    assert b"Received: no" in delivery_independent_bytes(folded)


def test_a_message_without_a_body_is_canonical_too() -> None:
    assert delivery_independent_bytes(b"Received: x\r\nSubject: s") == b"Subject: s\n\n"


def test_header_field_reads_the_first_field_unfolded() -> None:
    raw = b"Return-Path:\r\n <>\r\nReturn-Path: <later@x>\r\n\r\nbody"
    assert header_field(raw, "Return-Path") == "<>"
    assert header_field(raw, "Message-ID") is None
