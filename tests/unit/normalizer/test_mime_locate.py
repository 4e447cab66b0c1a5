"""``normalizer.mime_locate`` finds an attachment's part without parsing the whole message, and
whenever it answers, the part decodes to the very bytes the whole parse gives (differential,
over the fixtures and the public corpus in ../shared/corpus)."""

from __future__ import annotations

import base64
import email
import hashlib
from email.message import EmailMessage
from pathlib import Path

import pytest

import normalizer.email
from normalizer.email import attachment_bytes, contact_from_email
from normalizer.mime_locate import attachment_at, part_span

ROOT = Path(__file__).resolve().parents[3]
MESSAGES = sorted(
    [
        *(ROOT / "tests" / "fixtures").rglob("*.eml"),
        *(ROOT.parent / "shared" / "corpus").rglob("*.eml"),
    ]
)


def with_files(*files: tuple[str, bytes]) -> bytes:
    message = EmailMessage()
    message["From"] = "alice@example.org"
    message["To"] = "help@example.com"
    message["Subject"] = "Files"
    message.set_content("See attached.")
    for name, data in files:
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return message.as_bytes()


def test_the_walk_and_the_whole_parse_give_the_same_bytes_for_every_attachment() -> None:
    files = located = 0  # attached messages (most of the corpus: bounces) are left to the parse
    for path in MESSAGES:
        raw = path.read_bytes()
        for attachment in contact_from_email(raw).attachments:
            if attachment.part is None:
                continue
            whole = attachment_bytes(raw, attachment.part)
            span = part_span(raw, attachment.part)
            files += attachment.content_type.split("/")[0] not in ("message", "multipart")
            if span is not None:
                located += 1
                assert attachment_bytes(raw[span[0] : span[1]], "") == whole, (
                    path,
                    attachment.part,
                )
            assert attachment_at(raw, attachment.part, attachment.sha256) == whole
    assert files >= 100 and located >= files * 0.95, (located, files)


def test_an_attachment_is_decoded_from_its_own_part_not_from_the_whole_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wanted = b"%PDF-1.4 the file wanted"
    raw = with_files(("other.bin", b"x" * 300_000), ("wanted.pdf", wanted))
    parsed: list[int] = []
    real_parse = normalizer.email._parse

    def parse(data: bytes) -> object:
        parsed.append(len(data))
        return real_parse(data)

    monkeypatch.setattr(normalizer.email, "_parse", parse)
    assert attachment_at(raw, "2", hashlib.sha256(wanted).hexdigest()) == wanted
    assert parsed and max(parsed) < 1000  # the wanted part alone, never the 400 KB around it


def test_a_part_the_walk_cannot_read_still_comes_from_the_whole_parse() -> None:
    data = b"inside"
    raw = with_files(("a.bin", data)).replace(
        b"Content-Type: multipart/mixed", b"Content-Type: multipart/digest", 1
    )
    expected = attachment_bytes(raw, "1")
    assert part_span(raw, "1") is None
    assert expected is not None
    assert attachment_at(raw, "1", hashlib.sha256(expected).hexdigest()) == expected


def test_a_wrong_hash_or_a_missing_part_gives_nothing() -> None:
    raw = with_files(("a.bin", b"one"))
    assert attachment_at(raw, "1", hashlib.sha256(b"two").hexdigest()) is None
    assert attachment_at(raw, "7", hashlib.sha256(b"one").hexdigest()) is None
    assert part_span(raw, "x") is None
    assert part_span(raw, "\u00b2") is None  # a digit to isdigit, not to int
    assert attachment_at(raw, "\u00b2", hashlib.sha256(b"one").hexdigest()) is None
    assert part_span(base64.b64encode(raw), "1") is None


def test_a_boundary_outside_latin_1_leaves_the_part_to_the_whole_parse() -> None:
    """An RFC 2231 boundary may decode to any character; the walk cannot look for it in the
    bytes, so it says it cannot tell (None) instead of raising (a 500 on the download)."""
    raw = with_files(("a.bin", b"one")).replace(
        b'boundary="', b"boundary*=utf-8''%E2%82%AC; x=\"", 1
    )
    assert "€" in str(email.message_from_bytes(raw).get_boundary())
    assert part_span(raw, "1") is None
    assert attachment_at(raw, "1", hashlib.sha256(b"one").hexdigest()) is None
