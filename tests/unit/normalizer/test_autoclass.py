"""classify and is_role_address: which machine (if any) wrote a mail."""

from __future__ import annotations

import email
import email.message
import email.utils
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normalizer.autoclass import _PLAIN_ADDRESS, classify, is_role_address
from normalizer.contact import AutoClass
from tests.support.services import require_service

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "sisimai" / "maildir"
LOOP_MARKER = "servicedesk@example.com"


def parse(headers: str, body: str = "Hello\n") -> email.message.Message:
    return email.message_from_bytes((headers.strip("\n") + "\n\n" + body).encode())


def human(extra: str = "", subject: str = "Printer on fire") -> email.message.Message:
    return parse(
        f"From: Alice <alice@example.org>\nTo: servicedesk@example.com\nSubject: {subject}\n{extra}"
    )


def test_a_plain_person_to_person_mail_is_human() -> None:
    assert classify(human(), "alice@example.org", LOOP_MARKER) is AutoClass.HUMAN


def test_our_own_x_loop_marker_is_a_loop_in_any_case() -> None:
    msg = human("X-Loop: <ServiceDesk@Example.com>\nAuto-Submitted: auto-replied")
    assert classify(msg, "alice@example.org", LOOP_MARKER) is AutoClass.LOOP


def test_someone_elses_x_loop_marker_is_not_our_loop() -> None:
    msg = human("X-Loop: other-desk@example.net")
    assert classify(msg, "alice@example.org", LOOP_MARKER) is AutoClass.HUMAN


@pytest.mark.parametrize("envelope_sender", ["", "<>", " <> "])
def test_the_null_envelope_sender_is_a_bounce(envelope_sender: str) -> None:
    assert classify(human(), envelope_sender, None) is AutoClass.BOUNCE


def test_an_auto_reply_sent_with_the_null_sender_stays_an_auto_reply() -> None:
    msg = human("Auto-Submitted: auto-replied", subject="Automatic reply: Printer")
    assert classify(msg, "", None) is AutoClass.AUTO_REPLY


@pytest.mark.parametrize(
    ("report_type", "expected"),
    [
        ("delivery-status", AutoClass.BOUNCE),
        ("disposition-notification", AutoClass.MDN),
        ("feedback-report", AutoClass.FEEDBACK),
    ],
)
def test_multipart_report_types_are_classified(report_type: str, expected: AutoClass) -> None:
    msg = human(
        f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type="{report_type}";'
        ' boundary="B"'
    )
    assert classify(msg, "alice@example.org", None) is expected


@pytest.mark.parametrize("local", ["MAILER-DAEMON", "postmaster", "Mailer-Daemon"])
def test_mail_from_a_mailer_daemon_is_a_bounce(local: str) -> None:
    msg = parse(f"From: Mail Delivery System <{local}@mx.example.org>\nSubject: hello")
    assert classify(msg, "x@example.org", None) is AutoClass.BOUNCE


@pytest.mark.parametrize(
    "subject",
    [
        "Undelivered Mail Returned to Sender",
        "Delivery Status Notification (Failure)",
        "Mail delivery failed: returning message to sender",
        "Returned mail: see transcript for details",
        "Undeliverable: Printer on fire",
        "failure notice",
    ],
)
def test_typical_bounce_subjects_are_bounces(subject: str) -> None:
    assert classify(human(subject=subject), "x@example.org", None) is AutoClass.BOUNCE


def test_a_person_forwarding_a_bounce_is_still_a_person() -> None:
    msg = human(subject="Fwd: Undeliverable: Printer on fire")
    assert classify(msg, "alice@example.org", None) is AutoClass.HUMAN


@pytest.mark.parametrize(
    "extra",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated; owner-email=x@example.org",
        "X-Autoreply: yes",
        "X-Autorespond: yes",
        "X-Auto-Response-Suppress: All",
        "Precedence: auto_reply",
    ],
)
def test_auto_reply_headers_make_an_auto_reply(extra: str) -> None:
    assert classify(human(extra), "alice@example.org", None) is AutoClass.AUTO_REPLY


def test_auto_submitted_no_is_a_person() -> None:
    assert classify(human("Auto-Submitted: no"), "alice@example.org", None) is AutoClass.HUMAN


@pytest.mark.parametrize(
    "subject",
    [
        "Auto: Printer on fire",
        "Automatic reply: Printer on fire",
        "Out of Office: back Monday",
        "Autoreply: Printer",
        "=?utf-8?q?Automatic_reply=3A_Caf=C3=A9?=",
    ],
)
def test_vacation_subjects_make_an_auto_reply(subject: str) -> None:
    assert classify(human(subject=subject), "alice@example.org", None) is AutoClass.AUTO_REPLY


@pytest.mark.parametrize(
    "extra",
    [
        "List-Id: <ops.lists.example.org>",
        "List-Unsubscribe: <mailto:u@example.org>",
        "List-Post: <mailto:ops@example.org>",
        "Precedence: list",
    ],
)
def test_mailing_list_headers_make_a_list_mail(extra: str) -> None:
    assert classify(human(extra), "alice@example.org", None) is AutoClass.LIST


@pytest.mark.parametrize("precedence", ["bulk", "junk", "BULK"])
def test_bulk_precedence_makes_a_bulk_mail(precedence: str) -> None:
    msg = human(f"Precedence: {precedence}")
    assert classify(msg, "alice@example.org", None) is AutoClass.BULK


def test_the_order_puts_bounces_before_auto_replies_and_lists() -> None:
    msg = human(
        "Auto-Submitted: auto-replied\nList-Id: <x.example.org>",
        subject="Undelivered Mail Returned to Sender",
    )
    assert classify(msg, "x@example.org", None) is AutoClass.BOUNCE
    msg = human("Auto-Submitted: auto-replied\nList-Id: <x.example.org>")
    assert classify(msg, "alice@example.org", None) is AutoClass.AUTO_REPLY


def test_garbage_headers_and_mime_do_not_raise() -> None:
    msg = parse(
        "From: <<<\nSubject: =?bogus?x?===?=\nContent-Type: multipart/report; report-type",
        "--\n--\n",
    )
    assert classify(msg, None, LOOP_MARKER) is AutoClass.HUMAN


@pytest.mark.parametrize(
    "addr",
    [
        "no-reply@example.com",
        "noreply@example.com",
        "NoReply@Example.com",
        "do-not-reply@example.com",
        "donotreply@example.com",
        "mailer-daemon@example.com",
        "MAILER-DAEMON",
        "postmaster@example.com",
        "bounce@example.com",
        "bounces@example.com",
        "bounces+123=alice=example.org@mail.example.net",
        "daemon@example.com",
        "root@example.com",
        "abuse@example.com",
        "listserv@example.com",
        "majordomo@example.com",
        "owner-ops@example.com",
        "ops-request@example.com",
        "ops-bounces@example.com",
        "Alerts <noreply-alerts@example.com>",
    ],
)
def test_role_addresses_are_recognised(addr: str) -> None:
    assert is_role_address(addr)


@pytest.mark.parametrize(
    "addr",
    [
        "alice@example.org",
        "rooty@example.org",
        "bounce.house@example.org",
        "reply@example.org",
        "owner@example.org",
        "requester@example.org",
        "",
        None,
    ],
)
def test_personal_addresses_are_not_role_addresses(addr: str | None) -> None:
    assert not is_role_address(addr)


def _corpus_dir(name: str) -> Path:
    path = CORPUS / name
    if not path.is_dir():
        require_service(f"sisimai corpus not found at {path}")
    return path


def _classify_dir(path: Path) -> dict[str, AutoClass]:
    return {
        f.name: classify(email.message_from_bytes(f.read_bytes()), None, LOOP_MARKER)
        for f in sorted(path.iterdir())
        if f.is_file()
    }


@pytest.mark.parametrize("name", ["bsd", "dos"])
def test_at_least_95_percent_of_the_bounce_corpus_is_not_human(name: str) -> None:
    results = _classify_dir(_corpus_dir(name))
    humans = sorted(f for f, c in results.items() if c is AutoClass.HUMAN)
    rate = 1 - len(humans) / len(results)
    assert len(results) > 50
    assert rate >= 0.95, f"{rate:.1%} non-human; classified HUMAN: {humans}"


def test_the_corpus_non_bounces_written_by_people_are_human() -> None:
    results = _classify_dir(_corpus_dir("not"))
    assert results["is-not-bounce-01.eml"] is AutoClass.HUMAN
    assert results["is-not-bounce-02.eml"] is AutoClass.HUMAN


def test_a_delivered_mailbox_with_return_path_null_is_a_bounce_without_an_envelope() -> None:
    msg = human("Return-Path: <>", subject="Mail")
    assert classify(msg, None, None) is AutoClass.BOUNCE
    assert classify(msg, "alice@example.org", None) is AutoClass.HUMAN  # SMTP's envelope wins


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Bounce", AutoClass.BOUNCE),
        ("Complaint", AutoClass.FEEDBACK),
        ("Delivery", AutoClass.BOUNCE),
    ],
)
def test_amazon_ses_notifications_are_classified_by_their_type(
    kind: str, expected: AutoClass
) -> None:
    msg = parse(
        "From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n"
        "x-amz-sns-message-id: 1",
        '{"Type": "Notification", "Message": "{\\"notificationType\\":\\"' + kind + '\\"}"}',
    )
    assert classify(msg, "x@amazonses.com", None) is expected


def test_a_no_reply_robot_returning_a_message_is_a_bounce() -> None:
    msg = parse(
        "From: no-reply@mail.example.jp\nSubject: Mail\n"
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nerror\n--b\nContent-Type: message/rfc822\n\n"
        "From: a@b.example\nSubject: x\n\nbody\n--b--\n",
    )
    assert classify(msg, "no-reply@mail.example.jp", None) is AutoClass.BOUNCE


def test_a_digest_from_a_list_robot_is_not_a_bounce() -> None:
    msg = parse(
        "From: ppp-request@zzz.org\nSubject: Ppp digest\n"
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: message/rfc822\n\nFrom: a@b.example\n\nx\n--b--\n",
    )
    assert classify(msg, "ppp-request@zzz.org", None) is AutoClass.HUMAN


def test_exchange_generated_messages_are_auto_replies() -> None:
    msg = human("X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent")
    assert classify(msg, "alice@example.org", None) is AutoClass.AUTO_REPLY


@settings(max_examples=200)
@given(
    st.one_of(
        st.from_regex(_PLAIN_ADDRESS, fullmatch=True),
        st.from_regex(r"(no-?reply|owner-|bounces?\+)[a-z.=+-]{0,8}@example\.org", fullmatch=True),
        st.text(alphabet='aZ09.@_+=-<>"() ,;:[]\\', max_size=30),
    )
)
def test_an_address_taken_without_the_parser_is_one_the_parser_gives_back_unchanged(
    addr: str,
) -> None:
    # is_role_address skips email.utils.parseaddr for these: exact only if the parser would
    # have answered the address itself, with no display name.
    if _PLAIN_ADDRESS.fullmatch(addr):
        assert email.utils.parseaddr(addr) == ("", addr)
