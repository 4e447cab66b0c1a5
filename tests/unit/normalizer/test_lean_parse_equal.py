"""The lean parse (base64 bodies kept as spans of the raw bytes) gives the very Contact the
plain compat32 parse gives: on generated multipart mail, the shared corpus, the test fixtures
and CPython's own odd-but-legal test messages. The runs it finds are the ones the first,
regex-based finder found."""

from __future__ import annotations

import base64
import re
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import normalizer.email as email_module
import normalizer.mime_spans as spans_module
from normalizer.contact import Contact
from normalizer.email import contact_from_email, parse_if_cheap
from normalizer.mime_spans import SpanMessage, base64_runs, parse_lean

HERE = Path(__file__).resolve().parents[2]
SHARED = sorted((HERE.parent.parent / "shared" / "corpus").rglob("*.eml"))
STDLIB = sorted((Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data").glob("*"))
CORPUS = sorted((HERE / "fixtures").rglob("*.eml")) + SHARED + STDLIB
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SMALL_RUN = 16  # so that the corpus's small attachments are held as spans too


@contextmanager
def parse_mode(lean: bool) -> Iterator[None]:
    with (
        mock.patch.object(email_module, "LEAN_PARSE_BYTES", 0 if lean else 1 << 62),
        mock.patch.object(spans_module, "MIN_RUN_BYTES", SMALL_RUN),
    ):
        yield


def convert(raw: bytes, lean: bool) -> Contact:
    with parse_mode(lean):
        return contact_from_email(raw, received_at=AT, envelope_sender="s@example.org")


def assert_same_contact(raw: bytes) -> None:
    plain = convert(raw, lean=False)
    assert convert(raw, lean=True) == plain
    with parse_mode(lean=True):
        parsed = parse_if_cheap(raw, max_text_bytes=1 << 62)
        assert parsed is not None
        again = contact_from_email(parsed, received_at=AT, envelope_sender="s@example.org")
    assert again == plain


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_corpus_converts_alike_through_either_parse(path: Path) -> None:
    assert_same_contact(path.read_bytes())


def test_the_corpus_has_bodies_the_lean_parse_holds_as_spans() -> None:
    held = 0
    for path in CORPUS:
        with parse_mode(lean=True):
            message = parse_lean(path.read_bytes())
        held += any(isinstance(p, SpanMessage) and p._span for p in message.walk())
    assert held >= 20


# ---- generated mail ---------------------------------------------------------------------------
@st.composite
def base64_body(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=600))
    width = draw(st.sampled_from([4, 8, 60, 64, 72, 76, 77, 100]))
    text = base64.b64encode(data)
    if draw(st.booleans()):
        text = text.rstrip(b"=")  # padding left out
    if draw(st.integers(0, 9)) == 0:
        text += b"===="[: draw(st.integers(1, 4))]  # padding gone wrong
    lines = [text[i : i + width] for i in range(0, len(text), width)]
    if lines and draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from([b"", b"not base64!", b"QUJD", b"=="])))
    ending = draw(st.sampled_from([b"\n", b""]))
    return b"\n".join(lines) + ending


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(
        st.sampled_from(
            ["application/pdf", "image/png", "text/plain; charset=utf-8", "text/html", "x/y"]
        )
    )
    cte = draw(st.sampled_from(["base64", "base64", "base64", "7bit", "quoted-printable"]))
    disposition = draw(
        st.sampled_from(["", 'Content-Disposition: attachment; filename="f.bin"\n', "inline\n"])
    )
    if disposition == "inline\n":
        disposition = "Content-Disposition: inline\n"
    head = f"Content-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n{disposition}\n"
    return head.encode() + draw(base64_body())


@st.composite
def mail(draw: st.DrawFn, depth: int = 0) -> bytes:
    boundary = f"b{depth}x"
    parts = draw(st.lists(leaf(), min_size=0, max_size=4))
    if depth < 1 and draw(st.booleans()):
        inner = draw(mail(depth + 1))
        parts.append(b"Content-Type: message/rfc822\n\n" + inner)
    head = (
        "From: Alice <alice@example.org>\nTo: desk@example.com\nSubject: generated\n"
        f"Message-ID: <g{depth}@example.org>\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
    ).encode()
    preamble = draw(st.sampled_from([b"", b"QUJDREVGR0hJSktM\n"]))
    body = b"".join(b"--" + boundary.encode() + b"\n" + p + b"\n" for p in parts)
    closing = draw(st.sampled_from([b"--" + boundary.encode() + b"--\n", b""]))
    raw = head + preamble + body + closing
    return raw.replace(b"\n", b"\r\n") if depth == 0 and draw(st.booleans()) else raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mail())
def test_generated_mail_converts_alike_through_either_parse(raw: bytes) -> None:
    assert_same_contact(raw)


# ---- the run finder against the first one ------------------------------------------------------
_CLASS = re.compile(rb"[A-Za-z0-9+/=\r\n]+")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LONE_CR = re.compile(rb"\r(?!\n)")


def regex_runs(raw: bytes, least: int) -> list[tuple[int, int]]:
    """The finder as first written (regex character class, then regex checks)."""
    found: list[tuple[int, int]] = []
    for match in re.finditer(rb"[A-Za-z0-9+/=\r\n]{%d,}" % least, raw):
        start, end = match.span()
        if _LONE_CR.search(raw, start, end):
            continue
        for blank in _BLANK_LINE.finditer(raw, start, end):
            found += regex_whole_lines(raw, start, blank.start() + 1, least)
            start = blank.end()
        found += regex_whole_lines(raw, start, end, least)
    return found


def regex_whole_lines(raw: bytes, start: int, end: int, least: int) -> list[tuple[int, int]]:
    if start > 0 and raw[start - 1] != 0x0A:
        start = raw.find(b"\n", start, end) + 1
        if start == 0:
            return []
    end = raw.rfind(b"\n", start, end) + 1
    return [(start, end)] if end - start >= least and raw[start] not in b"\r\n" else []


PIECES = [b"A", b"z", b"=", b"+", b"\r", b"\n", b"\r\n", b" ", b"-", b"\n\n", b"QUJD" * 5]


@st.composite
def runs_input(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return b"".join(draw(st.lists(st.sampled_from(PIECES), max_size=60)))
    width = draw(st.integers(1, 9))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = b"".join(b"A" * width + eol for _ in range(draw(st.integers(0, 25))))
    body += b"B" * draw(st.integers(0, width)) + draw(st.sampled_from([b"", eol, b"\r", b"\n"]))
    at = draw(st.integers(0, len(body)))
    body = body[:at] + draw(st.sampled_from([b"", *PIECES])) + body[at:]
    return draw(st.sampled_from([b"", b"x", b"x\n", b"a: b"])) + body + b"--x"


@settings(max_examples=2000, deadline=None)
@given(runs_input(), st.sampled_from([1, 2, 3, 5, 8, 16, 40]), st.sampled_from([1, 7, 64]))
def test_runs_are_the_ones_the_regex_finder_found(raw: bytes, least: int, window: int) -> None:
    with mock.patch.object(spans_module, "_WINDOW_BYTES", window):
        assert base64_runs(raw, least) == regex_runs(raw, least)
        for start, end, chars in spans_module._runs(raw, least):
            if chars is not None:  # counted on the way: as counting would
                assert chars == end - start - raw.count(b"\n", start, end) - raw.count(
                    b"\r", start, end
                )


def test_a_lean_parse_that_fails_falls_back_to_the_plain_parse_not_to_headers_only() -> None:
    pdf = bytes(range(256)) * 64
    raw = (
        b"From: a@example.org\r\nSubject: lean fails\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe printer is jammed.\r\n"
        b"--B\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(pdf).replace(b"\n", b"\r\n")
        + b"--B--\r\n"
    )
    assert len(raw) >= email_module.LEAN_PARSE_BYTES

    def broken(_: bytes) -> None:
        raise RuntimeError("a bug in the lean parse")

    with mock.patch.object(email_module, "parse_lean", broken):
        contact = contact_from_email(raw)
    assert contact.text == "The printer is jammed."
    assert [a.size for a in contact.attachments] == [len(pdf)]
