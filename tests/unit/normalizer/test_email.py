"""contact_from_email: raw message bytes become one Contact, whatever the MIME looks like."""

from __future__ import annotations

import hashlib
import random
import re
import sysconfig
from datetime import UTC, datetime
from pathlib import Path

import pytest

from normalizer.contact import AutoClass, Channel
from normalizer.email import contact_from_email
from tests.support.services import require_service

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "sisimai" / "maildir"
CPYTHON_EMAIL_DATA = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
SYNTHETIC_ID = re.compile(r"sha256-[0-9a-f]{64}@spoc\.invalid")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- a real reply ---------------------------------------------------------------------------


def test_a_reply_gives_sender_subject_thread_hints_and_recipients() -> None:
    contact = contact_from_email(
        fixture("rfc2047_reply.eml"),
        recipients=["<ServiceDesk@Example.com>"],
        envelope_sender="bounce-1@mail.example.org",
    )
    assert contact.channel is Channel.EMAIL
    assert contact.sender.email == "renee.mueller@example.org"
    assert contact.sender.name == "Renée Müller"
    assert contact.subject == "Re: [SD-42] Drucker kaputt 😂 und [sd-7] ärger"
    assert contact.external_id == "CAF=reply.1@mail.example.org"
    assert contact.thread.message_id == "CAF=reply.1@mail.example.org"
    assert contact.thread.in_reply_to == ("spoc.42.1.ab12@servicedesk.example.com",)
    assert contact.thread.references == (
        "root.0@mail.example.org",
        "spoc.42.1.ab12@servicedesk.example.com",
    )
    assert contact.thread.subject_refs == ("SD-42", "SD-7")
    assert contact.recipients == ("servicedesk@example.com",)
    assert contact.visible_recipients == (
        "servicedesk@example.com",
        "bob@example.org",
        "carol@example.org",
    )
    assert contact.envelope_sender == "bounce-1@mail.example.org"
    assert contact.auto is AutoClass.HUMAN


def test_a_subject_tag_with_fullwidth_or_devanagari_digits_is_not_a_ticket_ref() -> None:
    raw = (
        "From: a@example.org\r\nTo: servicedesk@example.com\r\nMessage-ID: <x@example.org>\r\n"
        "Subject: Re: [SD-\uff11] and [SD-\u0967] and [SD-2]\r\n\r\nhello\r\n"
    ).encode()
    assert contact_from_email(raw).thread.subject_refs == ("SD-2",)


def test_the_plain_text_part_wins_over_html_and_is_decoded_from_its_charset() -> None:
    contact = contact_from_email(fixture("rfc2047_reply.eml"))
    assert contact.text == "Der Drucker im 3. Stock ist immer noch kaputt. Grüße, Renée"


def test_the_raw_bytes_are_kept_as_message_rfc822() -> None:
    raw = fixture("rfc2047_reply.eml")
    contact = contact_from_email(raw)
    assert contact.raw == raw
    assert contact.raw_type == "message/rfc822"


def test_received_at_and_channel_are_taken_as_given_or_default_to_now_in_utc() -> None:
    at = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    raw = fixture("rfc2047_reply.eml")
    assert contact_from_email(raw, received_at=at, channel=Channel.FAX).received_at == at
    assert contact_from_email(raw, channel=Channel.FAX).channel is Channel.FAX
    assert contact_from_email(raw).received_at.tzinfo is not None


# --- message ids ----------------------------------------------------------------------------


def test_a_missing_message_id_gives_the_same_synthetic_id_for_the_same_bytes() -> None:
    raw = fixture("no_message_id_bare_lf.eml")
    first, again = contact_from_email(raw), contact_from_email(raw)
    assert SYNTHETIC_ID.fullmatch(first.external_id)
    assert first.external_id == again.external_id
    canonical = raw.replace(b"\r\n", b"\n").rstrip(b"\n")  # LF ends, no trace fields here
    assert first.external_id == f"sha256-{hashlib.sha256(canonical).hexdigest()}@spoc.invalid"
    assert first.thread.message_id is None


def test_different_bytes_without_message_id_give_different_synthetic_ids() -> None:
    raw = fixture("no_message_id_bare_lf.eml")
    other = raw.replace(b"VPN broken", b"VPN still broken")
    assert contact_from_email(raw).external_id != contact_from_email(other).external_id


@pytest.mark.parametrize("header", [b"Message-ID:\n", b"Message-ID: <>\n", b"Message-ID:   \n"])
def test_an_empty_message_id_counts_as_missing(header: bytes) -> None:
    raw = header + fixture("no_message_id_bare_lf.eml")
    assert SYNTHETIC_ID.fullmatch(contact_from_email(raw).external_id)


def test_junk_in_id_headers_is_tolerated_and_bare_ids_are_kept() -> None:
    contact = contact_from_email(fixture("garbage_headers.eml"), envelope_sender="x@example.net")
    assert SYNTHETIC_ID.fullmatch(contact.external_id)
    assert contact.thread.in_reply_to == ("ok.1@example.org",)
    assert "a@b" in contact.thread.references
    assert all("<" not in ref and ">" not in ref for ref in contact.thread.references)


def test_a_message_id_without_brackets_is_used_as_written() -> None:
    raw = b"Message-ID: abc.123@example.org\n" + fixture("no_message_id_bare_lf.eml")
    assert contact_from_email(raw).external_id == "abc.123@example.org"


def test_very_long_reference_chains_keep_the_root_and_the_newest_ids() -> None:
    refs = " ".join(f"<r{i}@example.org>" for i in range(500))
    raw = f"References: {refs}\n".encode() + fixture("no_message_id_bare_lf.eml")
    references = contact_from_email(raw).thread.references
    assert len(references) == 100
    assert references[0] == "r0@example.org"
    assert references[-1] == "r499@example.org"


# --- line endings and encodings ------------------------------------------------------------


def test_bare_lf_and_crlf_messages_give_the_same_contact_fields() -> None:
    lf = fixture("no_message_id_bare_lf.eml")
    assert b"\r\n" not in lf
    crlf = lf.replace(b"\n", b"\r\n")
    a, b = contact_from_email(lf), contact_from_email(crlf)
    assert (a.sender, a.subject, a.text) == (b.sender, b.subject, b.text)
    assert a.text == 'The VPN client says "certificate expired" since this morning.'
    assert "\r" not in b.text


def test_raw_utf8_headers_from_smtputf8_senders_are_decoded() -> None:
    contact = contact_from_email(fixture("smtputf8_headers.eml"))
    assert contact.sender.email == "josé@bücher.example"
    assert contact.sender.name == "José Ångström"
    assert contact.subject == "Bildschirm flackert \u2013 überall"
    assert contact.external_id == "utf8.1@bücher.example"
    assert contact.text == "Mein Bildschirm flackert ständig."


def test_latin1_bytes_in_headers_fall_back_to_latin1() -> None:
    raw = b"From: Ren\xe9e <renee@example.org>\nSubject: Caf\xe9\n\nbody\n"
    contact = contact_from_email(raw)
    assert contact.sender.name == "Renée"
    assert contact.subject == "Café"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (b"=?utf-8?q?Drucker_kaputt?=", "Drucker kaputt"),
        (b"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=", "If you can read this yo"),
        (b"=?utf-8?b?4oI=?= =?utf-8?b?rA==?= split", "€ split"),
        (b"=?x-unknown?q?caf=C3=A9?=", "café"),
        (b"=?utf-8?b?!!!notbase64?= kept", "kept"),
        (b"=?bogus", "=?bogus"),
        (b"[SD-42]\tmany    spaces\n and folds", "[SD-42] many spaces and folds"),
    ],
)
def test_encoded_subjects_are_decoded_and_whitespace_folded(subject: bytes, expected: str) -> None:
    contact = contact_from_email(b"From: a@example.org\nSubject: " + subject + b"\n\nx\n")
    assert contact.subject.endswith(expected)


def test_subjects_are_cut_to_998_characters_without_control_characters() -> None:
    contact = contact_from_email(b"From: a@example.org\nSubject: a\x00b" + b"x" * 5000 + b"\n\nx\n")
    assert len(contact.subject) == 998
    assert "\x00" not in contact.subject


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        (b"iso-8859-1", b"Gr\xfc\xdfe", "Grüße"),
        (b"windows-1252", b"\x93quoted\x94", "\u201cquoted\u201d"),
        (b"no-such-charset", "Grüße".encode(), "Grüße"),
        (b"no-such-charset", b"Gr\xfc\xdfe", "Grüße"),
        (b"us-ascii", "Grüße".encode(), "Grüße"),
        (b"base64", b"plain", "plain"),
        (b"utf-8", b"bad \xff byte", "bad \ufffd byte"),
    ],
)
def test_bodies_decode_with_their_charset_or_fall_back(
    charset: bytes, body: bytes, expected: str
) -> None:
    raw = b"From: a@example.org\nContent-Type: text/plain; charset=" + charset + b"\n\n" + body
    assert contact_from_email(raw).text == expected


def test_nul_and_control_characters_never_reach_the_text() -> None:
    contact = contact_from_email(b"From: a@example.org\n\nline\x00one\x1b[31m\ttab\nline two\n")
    assert contact.text == "lineone[31m\ttab\nline two"


# --- senders --------------------------------------------------------------------------------


def test_a_missing_from_falls_back_to_the_envelope_sender() -> None:
    raw = b"To: servicedesk@example.com\nSubject: hi\n\nx\n"
    contact = contact_from_email(raw, envelope_sender="<Bob@Example.org>")
    assert contact.sender.email == "bob@example.org"


def test_an_unparseable_from_falls_back_to_the_envelope_sender() -> None:
    raw = b'From: <<<>>> ,,, "unterminated\nSubject: hi\n\nx\n'
    assert contact_from_email(raw, envelope_sender="bob@example.org").sender.email == (
        "bob@example.org"
    )


@pytest.mark.parametrize("envelope_sender", [None, "", "<>"])
def test_no_usable_sender_anywhere_leaves_the_email_empty(envelope_sender: str | None) -> None:
    raw = b"From: undisclosed-recipients:;\nSubject: hi\n\nx\n"
    assert contact_from_email(raw, envelope_sender=envelope_sender).sender.email is None


def test_quoted_display_names_with_commas_are_parsed() -> None:
    raw = b'From: "Doe, John (IT)" <J.Doe@Example.org>\n\nx\n'
    sender = contact_from_email(raw).sender
    assert (sender.email, sender.name) == ("j.doe@example.org", "Doe, John (IT)")


# --- bodies and attachments -----------------------------------------------------------------


def test_html_only_mail_becomes_sanitised_readable_text() -> None:
    text = contact_from_email(fixture("html_only.eml")).text
    assert "alert" not in text and "onerror" not in text and "Ignored title" not in text
    assert text == (
        "My laptop will not boot.\n\n- It beeps twice\n- The screen stays black\n\nThanks,\nEve"
    )


def test_attachment_names_with_path_traversal_come_out_safe() -> None:
    contact = contact_from_email(fixture("traversal_attachments.eml"))
    names = [a.filename for a in contact.attachments]
    assert names == [
        "passwd",
        "boot.ini",
        "attachment.png",
        "Rechnung März.pdf",
        "Bericht über CON.doc",
    ]
    assert contact.text == "See attached."


def test_attachments_carry_decoded_data_content_type_and_its_sha256() -> None:
    attachments = contact_from_email(fixture("traversal_attachments.eml")).attachments
    boot = attachments[1]
    assert boot.data == b"[boot loader]"
    assert boot.content_type == "application/octet-stream"
    assert boot.sha256 == hashlib.sha256(b"[boot loader]").hexdigest()
    image = attachments[2]
    assert image.content_type == "image/png"
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.size == 8 + 1024


def test_a_forwarded_message_is_an_eml_attachment_not_part_of_the_text() -> None:
    raw = (
        b"From: a@example.org\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nPlease look at this.\n"
        b"--B\nContent-Type: message/rfc822\n\n"
        b"From: b@example.org\nSubject: inner\n\nInner text\n--B--\n"
    )
    contact = contact_from_email(raw)
    assert contact.text == "Please look at this."
    assert [a.filename for a in contact.attachments] == ["attachment.eml"]
    assert b"Inner text" in contact.attachments[0].data


def test_absurdly_nested_multiparts_do_not_raise() -> None:
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(3000)
    )
    contact = contact_from_email(b"From: a@example.org\nSubject: deep\n" + nested + b"\nhi\n")
    assert contact.sender.email == "a@example.org"
    assert contact.subject == "deep"


# --- automatic mail -------------------------------------------------------------------------


def test_auto_replies_are_classified() -> None:
    assert contact_from_email(fixture("auto_reply.eml")).auto is AutoClass.AUTO_REPLY


def test_mail_from_one_of_our_own_addresses_is_a_loop() -> None:
    raw = b"From: IT Service Desk <ServiceDesk@example.com>\nSubject: hi\n\nx\n"
    contact = contact_from_email(raw, our_addresses=["servicedesk@example.com"])
    assert contact.auto is AutoClass.LOOP


def test_mail_carrying_our_x_loop_marker_is_a_loop() -> None:
    raw = b"From: a@example.org\nX-Loop: servicedesk@example.com\nSubject: hi\n\nx\n"
    contact = contact_from_email(raw, loop_marker="servicedesk@example.com")
    assert contact.auto is AutoClass.LOOP


def test_the_null_envelope_sender_makes_a_bounce() -> None:
    raw = fixture("no_message_id_bare_lf.eml")
    assert contact_from_email(raw, envelope_sender="").auto is AutoClass.BOUNCE


# --- odd MIME from elsewhere ----------------------------------------------------------------


def _cpython_messages() -> list[Path]:
    return sorted(CPYTHON_EMAIL_DATA.glob("msg_*.txt")) if CPYTHON_EMAIL_DATA.is_dir() else []


@pytest.mark.skipif(
    not _cpython_messages(),
    reason=f"CPython's email test data not installed at {CPYTHON_EMAIL_DATA}",
)
@pytest.mark.parametrize("path", _cpython_messages(), ids=lambda p: p.name)
def test_every_cpython_test_message_converts_without_raising(path: Path) -> None:
    contact = contact_from_email(path.read_bytes())
    assert contact.external_id
    assert len(contact.subject) <= 998
    for attachment in contact.attachments:
        assert attachment.filename and "/" not in attachment.filename


def test_every_bounce_in_the_corpus_converts_without_raising() -> None:
    path = CORPUS / "bsd"
    if not path.is_dir():
        require_service(f"sisimai corpus not found at {path}")
    contacts = [contact_from_email(f.read_bytes()) for f in sorted(path.iterdir())]
    assert len(contacts) > 50
    assert sum(c.is_automatic for c in contacts) / len(contacts) >= 0.95


def test_charsets_that_decode_to_lone_surrogates_still_give_storable_text() -> None:
    raw = b"From: a@example.org\nContent-Type: text/plain; charset=utf-7\n\nhi +2Ak- there\n"
    text = contact_from_email(raw).text
    text.encode("utf-8")
    assert text.startswith("hi ") and text.endswith(" there")


def test_randomly_damaged_messages_never_raise_and_give_storable_strings() -> None:
    rng = random.Random(20261122)
    sources = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    tokens = [b"=?", b"?=", b"<", b">", b"\x00", b"\xff", b"\r", b"\n--", b";", b'"', b"*", b"\\"]
    for _ in range(300):
        raw = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(raw) + 1)
            if rng.random() < 0.5:
                raw[pos:pos] = rng.choice(tokens)
            else:
                del raw[pos : pos + rng.randint(1, 20)]
        contact = contact_from_email(bytes(raw), envelope_sender=rng.choice([None, "", "a@b.c"]))
        texts = [
            contact.subject,
            contact.text,
            contact.external_id,
            contact.sender.name or "",
            *contact.thread.references,
            *(a.filename for a in contact.attachments),
        ]
        for text in texts:
            text.encode("utf-8")
            assert "\x00" not in text


def test_what_the_parser_worked_around_is_flagged_on_the_contact() -> None:
    broken = (
        b"From: a@example.org\r\nTo: servicedesk@example.com\r\nSubject: x\r\n"
        b'Content-Type: multipart/mixed; boundary="zzz"\r\n\r\nno boundary here\r\n'
    )
    contact = contact_from_email(broken)
    assert "StartBoundaryNotFoundDefect" in contact.problems
    assert contact.text == "no boundary here"
    assert contact.raw == broken
    clean = b"From: a@example.org\r\nTo: servicedesk@example.com\r\nSubject: x\r\n\r\nok\r\n"
    assert contact_from_email(clean).problems == ()
