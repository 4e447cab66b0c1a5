"""The lean parse reads a big message exactly as ``email.message_from_bytes`` does."""

from __future__ import annotations

import base64
import email
import email.message
import random
import tracemalloc

import pytest

from normalizer.mime_spans import MIN_RUN_BYTES, SpanMessage, parse_lean

_RANDOM = random.Random(12)
BLOB = _RANDOM.randbytes(3 * MIN_RUN_BYTES)
ENCODED = base64.encodebytes(BLOB).replace(b"\n", b"\r\n")


def attachment(body: bytes, name: str = "a.bin", cte: str = "base64") -> bytes:
    return (
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        + f'Content-Disposition: attachment; filename="{name}"\r\n'.encode()
        + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        + body
    )


def multipart(*parts: bytes, boundary: bytes = b"B") -> bytes:
    head = (
        b"From: a@example.org\r\nTo: desk@example.com\r\nSubject: big\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
        b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
    )
    return head + b"".join(parts) + b"--" + boundary + b"--\r\n"


def nested(inner: bytes) -> bytes:
    return multipart(b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n")


CASES = {
    "one attachment": multipart(attachment(ENCODED)),
    "two attachments": multipart(attachment(ENCODED), attachment(ENCODED[:-40] + b"\r\n", "b")),
    "padding at the end": multipart(attachment(base64.encodebytes(BLOB[:-1]))),
    "padding in the middle": multipart(attachment(ENCODED + base64.encodebytes(b"x") + ENCODED)),
    "not whole groups": multipart(attachment(ENCODED[:-2] + b"A\r\n")),
    "text after the run": multipart(attachment(ENCODED + b"-- \r\nnot base64\r\n")),
    "a blank line inside": multipart(attachment(ENCODED[:90000] + b"\r\n" + ENCODED[90000:])),
    "a lone CR inside": multipart(attachment(ENCODED[:90000] + b"\r" + ENCODED[90000:])),
    "LF line ends": multipart(attachment(base64.encodebytes(BLOB))).replace(b"\r\n", b"\n"),
    "quoted-printable": multipart(attachment(ENCODED, cte="quoted-printable")),
    "not encoded": multipart(attachment(ENCODED, cte="7bit")),
    "a forwarded message": nested(multipart(attachment(ENCODED), boundary=b"INNER")),
    "base64 text as preamble": multipart(attachment(ENCODED)).replace(
        b"\r\n\r\n--B\r\n", b"\r\n\r\n" + ENCODED + b"--B\r\n", 1
    ),
    "single part": b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\n" + ENCODED,
    "no header break": b"Subject: s\r\n" + ENCODED,
}


def pairs(
    a: email.message.Message, b: email.message.Message
) -> list[tuple[email.message.Message, email.message.Message]]:
    return list(zip(a.walk(), b.walk(), strict=True))


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_every_part_reads_as_the_stdlib_parser_reads_it(raw: bytes) -> None:
    expected = email.message_from_bytes(raw)
    lean = parse_lean(raw)
    for want, got in pairs(expected, lean):
        assert got.get_content_type() == want.get_content_type()
        assert got.is_multipart() == want.is_multipart()
        assert type(got.defects) is type(want.defects)
        assert [type(d) for d in got.defects] == [type(d) for d in want.defects]
        if not want.is_multipart():
            assert got.get_payload() == want.get_payload()
            assert got.get_payload(decode=True) == want.get_payload(decode=True)
            assert [type(d) for d in got.defects] == [type(d) for d in want.defects]
    assert lean.as_bytes() == expected.as_bytes()


def test_a_clean_base64_attachment_is_decoded_from_the_raw_bytes() -> None:
    raw = CASES["one attachment"]
    parts = [p for p in parse_lean(raw).walk() if isinstance(p, SpanMessage) and p._span]
    assert len(parts) == 1
    assert parts[0].get_payload(decode=True) == BLOB


def test_parsing_a_big_message_does_not_copy_its_attachment() -> None:
    raw = multipart(attachment(base64.encodebytes(_RANDOM.randbytes(6_000_000))))
    tracemalloc.start()
    try:
        parse_lean(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(raw) / 10


def test_parsing_a_one_line_attachment_does_not_copy_it_either() -> None:
    blob = _RANDOM.randbytes(3_000_000)
    raw = multipart(attachment(base64.b64encode(blob) + b"\r\n"))
    tracemalloc.start()
    try:
        message = parse_lean(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(raw) / 10
    assert [p.get_payload(decode=True) for p in message.walk()][2] == blob
