"""read_report: what a bounce says about the message it returns, and contact_from_email's use."""

from __future__ import annotations

import email
from pathlib import Path

from normalizer.contact import AutoClass, Report
from normalizer.email import contact_from_email
from normalizer.reports import read_report
from tests.support.reports import delivery_report

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


RETURNED = b"""From: IT Service Desk <servicedesk@example.com>
Message-ID: <spoc.1.00ff@example.com>
Subject: [SD-1] Printer on fire
"""


def dsn(action: str = "failed", returned_type: str = "text/rfc822-headers") -> bytes:
    return delivery_report(
        RETURNED, recipient="Alice@Example.org", action=action, returned_type=returned_type
    )


def test_a_dsn_names_the_returned_message_and_the_failed_recipient() -> None:
    report = read_report(email.message_from_bytes(dsn()))
    assert report == Report(
        original_ids=("spoc.1.00ff@example.com",),
        original_senders=("servicedesk@example.com",),
        original_subject_refs=("SD-1",),
        failed_recipients=("alice@example.org",),
        delivery_failed=True,
    )


def test_a_delay_notice_is_not_a_failure() -> None:
    assert read_report(email.message_from_bytes(dsn("delayed"))).delivery_failed is False


def test_a_returned_message_part_is_read_like_returned_headers() -> None:
    raw = dsn(returned_type="message/rfc822")
    assert read_report(email.message_from_bytes(raw)).original_ids == ("spoc.1.00ff@example.com",)


def test_a_plain_text_bounce_quoting_the_original_headers_is_read() -> None:
    raw = b"""From: MAILER-DAEMON@mx.example.org
Subject: failure notice
X-Failed-Recipients: bob@example.org

Hi. This is the qmail-send program. I'm afraid I wasn't able to deliver your message.

--- Below this line is a copy of the message.

> Message-ID: <spoc.9.abcd@example.com>
> Subject: [SD-9] VPN
"""
    report = read_report(email.message_from_bytes(raw))
    assert report.original_ids == ("spoc.9.abcd@example.com",)
    assert report.failed_recipients == ("bob@example.org",) and report.delivery_failed is True


def test_garbage_yields_an_empty_report_not_an_exception() -> None:
    raw = b'Content-Type: multipart/report; boundary=""\n\n--\n\x00\xff--'
    assert read_report(email.message_from_bytes(raw)).original_ids == ()


def test_the_converter_reads_reports_of_automatic_mail_only() -> None:
    bounce = contact_from_email(dsn(), envelope_sender="")
    assert bounce.auto is AutoClass.BOUNCE
    assert bounce.report.original_ids == ("spoc.1.00ff@example.com",)
    person = contact_from_email((FIXTURES / "email" / "human_forwarded_bounce.eml").read_bytes())
    assert person.auto is AutoClass.HUMAN and person.report == Report()


def test_the_converter_keeps_reply_to_addresses_case_folded() -> None:
    raw = b"From: alice@example.org\nReply-To: IT Team <IT-Team@Example.org>, x@y.example\n\nhi"
    assert contact_from_email(raw).reply_to == ("it-team@example.org", "x@y.example")
