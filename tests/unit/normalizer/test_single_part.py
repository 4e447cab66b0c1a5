"""The one-part fast parse builds the very message ``email.message_from_bytes`` builds (or
declines): on generated header blocks with odd lines, line ends and content types, on the
shared corpus, the test fixtures and CPython's own test messages (as sent and with CRLF line
ends), and the Contact converted from either is the same."""

from __future__ import annotations

import email
import email.message
import sysconfig
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import normalizer.email as email_module
import normalizer.mime_spans as spans_module
from normalizer.email import contact_from_email
from normalizer.mime_spans import SpanMessage, parse_lean
from normalizer.single_part import parse_single_part

HERE = Path(__file__).resolve().parents[2]
SHARED = sorted((HERE.parent.parent / "shared" / "corpus").rglob("*.eml"))
STDLIB = sorted((Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data").glob("*"))
CORPUS = sorted((HERE / "fixtures").rglob("*.eml")) + SHARED + STDLIB
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def state(msg: email.message.Message) -> dict[str, object]:
    """Everything a compat32 message holds (a defect by its kind and text)."""
    held = dict(vars(msg))
    held["defects"] = [(type(d), str(d)) for d in msg.defects]
    held["class"] = type(msg)
    return held


def assert_parsed_alike(raw: bytes) -> bool:
    """The fast parse is the stdlib's where it answers; whether it answered."""
    fast = parse_single_part(raw)
    if fast is not None:
        assert state(fast) == state(email.message_from_bytes(raw))
    return fast is not None


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# ---- generated mail ---------------------------------------------------------------------------
NAMES = st.sampled_from(
    [
        "Subject",
        "From",
        "To",
        "Content-Type",
        "content-type",
        "X-Odd!#$%&'*+-.^_`|~",
        "Message-ID",
        "",  # ": value" -- a defect for the parser
        "Sub ject",  # a space in the name: not a field
        "Subj\udcc3\udca9ct",  # 8-bit bytes in the name
        "From ",  # "From : x"
    ]
)
VALUES = st.text(alphabet=st.sampled_from(list(' \tabc:;=/"\udcff<>@.-')), max_size=12)
CONTENT_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "TEXT/HTML",
        "multipart/mixed; boundary=b",
        "Multipart/Alternative; boundary=b",
        "message/rfc822",
        "message/delivery-status",
        "application/pdf",
        "garbage",
        "",
        "text/plain; charset=\udcff",
    ]
)
ENDS = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r"])


@st.composite
def header_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field", "field", "type", "continuation", "unix-from", "junk"]))
    if kind == "field":
        text = f"{draw(NAMES)}:{draw(VALUES)}"
    elif kind == "type":
        text = "Content-Type:" + draw(st.sampled_from(["", " ", " \t"])) + draw(CONTENT_TYPES)
    elif kind == "continuation":
        text = draw(st.sampled_from([" ", "\t", "  "])) + draw(VALUES)
    elif kind == "unix-from":
        text = "From someone@example.org Mon Jan  1 00:00:00 2026"
    else:
        text = draw(st.sampled_from(["no colon here", ":", "", "\udcc3\udca9: x", "--b"]))
    return text + draw(ENDS)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    head = "".join(draw(st.lists(header_line(), max_size=8)))
    separator = draw(st.sampled_from(["\r\n", "\r\n", "\n", "", "\r\n\r\n"]))
    body = draw(st.text(alphabet=st.sampled_from(list("ab \t\r\n.-:\udc80")), max_size=40))
    return (head + separator + body).encode("ascii", "surrogateescape")


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_mail_parses_alike_or_is_left_to_the_parser(raw: bytes) -> None:
    assert_parsed_alike(raw)


@given(
    st.lists(
        st.tuples(st.sampled_from(["Subject", "To", "X-A"]), VALUES, st.lists(VALUES, max_size=2)),
        min_size=1,
        max_size=6,
    ),
    CONTENT_TYPES,
    st.text(alphabet=st.sampled_from(list("ab \t\r\n.\udc80")), max_size=40),
)
def test_clean_one_part_mail_takes_the_fast_parse(
    fields: list[tuple[str, str, list[str]]], ctype: str, body: str
) -> None:
    lines = [
        f"{name}:{value}" + "".join(f"\r\n {more}" for more in folds)
        for name, value, folds in fields
    ]
    raw = ("\r\n".join([*lines, f"Content-Type: {ctype}"]) + "\r\n\r\n" + body).encode(
        "ascii", "surrogateescape"
    )
    answered = assert_parsed_alike(raw)
    assert answered == (not ctype.lower().startswith(("multipart/", "message/")))


def test_a_message_part_class_is_kept() -> None:
    raw = b"Subject: x\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
    fast = parse_single_part(raw, SpanMessage)
    assert fast is not None
    assert state(fast) == state(email.message_from_bytes(raw, _class=SpanMessage))


def test_the_lean_parse_uses_it_when_it_holds_no_span() -> None:
    raw = b"Subject: x\r\n\r\n" + b"Twelve words of plain text in a line of a mail.\r\n" * 200
    with mock.patch.object(spans_module, "parse_single_part", return_value=None) as declined:
        slow = parse_lean(raw)
    declined.assert_called_once()
    assert state(parse_lean(raw)) == state(slow)


# ---- real mail --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_corpus_parses_alike(path: Path) -> None:
    raw = path.read_bytes()
    assert_parsed_alike(raw)
    assert_parsed_alike(crlf(raw))


def test_the_corpus_has_mail_the_fast_parse_takes() -> None:
    assert sum(assert_parsed_alike(crlf(p.read_bytes())) for p in CORPUS) >= 50


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_corpus_converts_to_the_same_contact(path: Path) -> None:
    raw = crlf(path.read_bytes())

    def convert() -> object:
        return contact_from_email(raw, received_at=AT, envelope_sender="s@example.org")

    fast = convert()
    with mock.patch.object(email_module, "parse_single_part", return_value=None):
        assert convert() == fast
