"""Mutations of real mail for fuzzing the email intake (bench/fuzz_smtp.py and its CI test).

Each mutation is seeded and deterministic: ``mutate(raw, rng)`` applies one to three of the
mutators below to a corpus message. They aim where mail parsers break: header syntax, MIME
structure (boundaries, nesting, content types), transfer encodings and charsets, line ends and
lengths, control bytes, and sheer size. Every mutated message gets a unique Message-ID first
(most of the time), so the router stores each as a contact of its own instead of recognising an
MTA's resend.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

Mutator = Callable[[bytes, random.Random], bytes]

HERE = Path(__file__).resolve().parent
SEED_DIRS = (
    HERE.parent.parent / "shared/corpus/sisimai/maildir",
    HERE.parent / "tests/fixtures",
)
_CHARSETS = (b"utf-8", b"iso-8859-1", b"x-unknown", b"utf-16", b"", b"\xff\xfe", b"gb2312")
_CTYPES = (
    b"multipart/mixed",
    b"multipart/alternative; boundary=",
    b"message/rfc822",
    b"text/html",
    b"application/octet-stream",
    b"multipart/report; report-type=delivery-status",
    b"text/plain; charset=",
    b"\x00/\x00",
)
_ENCODINGS = (b"base64", b"quoted-printable", b"7bit", b"8bit", b"x-uuencode", b"binary", b"b64")


def seed_messages(limit: int | None = None) -> list[bytes]:
    """The corpus and fixture messages, in a stable order (sorted by path)."""
    paths: list[Path] = []
    for directory in SEED_DIRS:
        if directory.is_dir():
            paths.extend(p for p in directory.rglob("*") if p.suffix in (".eml", ".txt"))
    messages = [p.read_bytes() for p in sorted(paths)]
    return messages[:limit] if limit else messages


def mutations(seeds: list[bytes], count: int, seed: int = 0) -> Iterator[tuple[int, bytes]]:
    """``count`` mutated messages as ``(index, raw)``, round-robin over ``seeds``."""
    rng = random.Random(seed)
    for i in range(count):
        yield i, mutate(seeds[i % len(seeds)], rng, i)


def mutate(raw: bytes, rng: random.Random, index: int = 0) -> bytes:
    for mutator in rng.sample(MUTATORS, rng.randint(1, 3)):
        raw = mutator(raw, rng)
    if rng.random() < 0.9:
        raw = b"Message-ID: <fuzz-%d-%d@fuzz.test>\r\n" % (index, rng.randrange(1 << 30)) + raw
    return raw


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            return head, found, body
    return raw, b"", b""


def flip_bytes(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 20)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randrange(len(raw) + 1)]


def drop_separator(raw: bytes, rng: random.Random) -> bytes:
    head, _, body = _split(raw)
    return head + b"\r\n" + body


def duplicate_headers(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    lines = head.splitlines(keepends=True)
    if not lines:
        return raw
    extra = [rng.choice(lines) for _ in range(rng.randint(1, 50))]
    return b"".join(lines + extra) + sep + body


def swap_content_type(raw: bytes, rng: random.Random) -> bytes:
    value = rng.choice(_CTYPES) + (rng.choice(_CHARSETS) if rng.random() < 0.5 else b"")
    return _set_header(raw, b"Content-Type", value, rng)


def swap_transfer_encoding(raw: bytes, rng: random.Random) -> bytes:
    return _set_header(raw, b"Content-Transfer-Encoding", rng.choice(_ENCODINGS), rng)


def break_boundaries(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    lines = body.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"--") and rng.random() < 0.5:
            lines[i] = rng.choice([b"--", line + b"--", line[:-3], b"--" + b"x" * 80, b""])
    return head + sep + b"\n".join(lines)


def nest_deeply(raw: bytes, rng: random.Random) -> bytes:
    depth = rng.choice([5, 50, 200])
    head = b"From: deep@example.org\r\nTo: servicedesk@example.com\r\nMIME-Version: 1.0\r\n"
    parts = []
    for level in range(depth):
        parts.append(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
        )
    return head + b"".join(parts) + raw


def bare_line_ends(raw: bytes, rng: random.Random) -> bytes:
    return raw.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]))


def long_lines(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    filler = rng.choice([b"A", b"=", b"=?utf-8?b?", b"\xe2\x82", b" "]) * rng.choice([999, 20000])
    if rng.random() < 0.5:
        return head + b"\r\nSubject: " + filler + sep + body
    return head + sep + filler + b"\r\n" + body


def control_bytes(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 30)):
        data.insert(rng.randrange(len(data) + 1), rng.choice([0, 1, 8, 11, 12, 27, 127, 0x85]))
    return bytes(data)


def bad_encoded_words(raw: bytes, rng: random.Random) -> bytes:
    word = rng.choice(
        [b"=?utf-8?b?////?=", b"=?x?q?=ZZ?=", b"=?utf-8?q?" + b"=E2" * 50 + b"?=", b"=?\xff?b?QQ?="]
    )
    return _set_header(raw, rng.choice([b"Subject", b"From"]), word * rng.randint(1, 40), rng)


def garbage_addresses(raw: bytes, rng: random.Random) -> bytes:
    value = rng.choice(
        [b"<>", b"@", b'"a@b"@c', b"<<<a@b>>>", b"a@b@c", b"\x00@x", b",,,,", b"(c) <a@b> (x", b""]
    )
    return _set_header(raw, rng.choice([b"From", b"To", b"Reply-To", b"Cc"]), value, rng)


def _set_header(raw: bytes, name: bytes, value: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    lines = [
        line
        for line in head.splitlines(keepends=True)
        if rng.random() < 0.5 or not line.lower().startswith(name.lower() + b":")
    ]
    lines.insert(rng.randrange(len(lines) + 1), name + b": " + value + b"\r\n")
    return b"".join(lines) + (sep or b"\r\n\r\n") + body


MUTATORS: list[Mutator] = [
    flip_bytes,
    truncate,
    drop_separator,
    duplicate_headers,
    swap_content_type,
    swap_transfer_encoding,
    break_boundaries,
    nest_deeply,
    bare_line_ends,
    long_lines,
    control_bytes,
    bad_encoded_words,
    garbage_addresses,
]
