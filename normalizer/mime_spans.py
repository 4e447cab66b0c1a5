"""Parse a big message without copying its base64 bodies: they stay spans of the raw bytes.

``email.message_from_bytes`` on a 25 MB mail holds it about eight times over at its peak: the
bytes decoded to a ``str``, that ``str`` again in a ``StringIO`` (four bytes a character),
every line as an object of its own, and each part's payload joined from its lines. Here the
message is parsed by the same compat32 parser, but with each long run of base64 lines (what
mail clients send attachments as) replaced by a one-line token first. Such a run cannot hold a
header field, a header continuation or a MIME boundary (none of those is made of base64
characters only), so the parser sees the same structure; only the run's text is left out.

Afterwards every part whose payload is a token is given its run back as a span of ``raw`` (a
``memoryview``, no copy): ``get_payload(decode=True)`` decodes it straight from there, and
``get_payload()`` (what serialising a part uses) gives the text as sent. A payload where a
token is mixed with other lines, or that the compat32 decoder would not read exactly like
``binascii.a2b_base64`` (padding not at the very end, not a multiple of four characters), gets
its text put back into the payload instead, so every part decodes exactly as before.
"""

from __future__ import annotations

import binascii
import email.message
import email.parser
import re
import secrets
from collections.abc import Iterator
from typing import Any

__all__ = ["parse_lean"]

MIN_RUN_BYTES = 64 * 1024
# One character class repeated (no per-line group: re would keep a backtracking record for
# each of a 25 MB run's lines); the match is then cut to whole, non-blank lines.
_BASE64_CHARS = re.compile(rb"[A-Za-z0-9+/=\r\n]{%d,}" % MIN_RUN_BYTES)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LONE_CR = re.compile(rb"\r(?!\n)")


class SpanMessage(email.message.Message):
    """A compat32 message part whose base64 body may be a span of the raw message."""

    _span: memoryview | None = None
    _tail = ""  # line breaks after the span that belong to the payload (a last part's)

    def get_payload(self, i: int | None = None, decode: bool = False) -> Any:
        span = self._span
        if span is None or i is not None:
            return super().get_payload(i, decode)  # type: ignore[call-overload]
        if decode:
            return binascii.a2b_base64(span)
        return str(span, "ascii") + self._tail


def parse_lean(raw: bytes) -> email.message.Message:
    """``email.message_from_bytes(raw)`` (compat32), holding long base64 bodies as spans."""
    view = memoryview(raw)
    nonce = secrets.token_hex(8)
    spans: dict[str, tuple[int, int]] = {}
    pieces: list[bytes | memoryview] = []
    at = 0
    for start, end in _runs(raw):
        end -= 2 if raw[end - 2 : end] == b"\r\n" else 1  # the run's last line break stays
        token = f"SPOCSPAN{nonce}N{len(spans)}"
        spans[token] = (start, end)
        pieces += [view[at:start], token.encode("ascii")]
        at = end
    pieces.append(view[at:])
    skeleton = b"".join(pieces)
    del pieces
    msg = email.parser.BytesParser(_class=SpanMessage).parsebytes(skeleton)
    if spans:
        for part in msg.walk():
            _give_back(part, raw, spans)
    return msg


def _runs(raw: bytes) -> Iterator[tuple[int, int]]:
    """Where ``raw`` has at least ``MIN_RUN_BYTES`` of whole lines of base64 characters, with
    no blank line among them and each ending in a line break (spans end after it)."""
    for match in _BASE64_CHARS.finditer(raw):
        start, end = match.span()
        if _LONE_CR.search(raw, start, end):
            continue  # the parser would break lines there too; leave such text alone
        for blank in _BLANK_LINE.finditer(raw, start, end):
            yield from _whole_lines(raw, start, blank.start() + 1)
            start = blank.end()
        yield from _whole_lines(raw, start, end)


def _whole_lines(raw: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    if start > 0 and raw[start - 1] != 0x0A:  # began inside a line: from the next one on
        start = raw.find(b"\n", start, end) + 1
        if start == 0:
            return
    end = raw.rfind(b"\n", start, end) + 1
    if end - start >= MIN_RUN_BYTES and raw[start] not in b"\r\n":
        yield start, end


def _give_back(part: email.message.Message, raw: bytes, spans: dict[str, tuple[int, int]]) -> None:
    for name in ("preamble", "epilogue"):  # text around a multipart's parts: as it was
        text = getattr(part, name)
        if text and "SPOCSPAN" in text:
            setattr(part, name, _with_runs(text, raw, spans))
    payload = part._payload  # type: ignore[attr-defined]  # compat32 keeps the text here
    if not isinstance(payload, str) or "SPOCSPAN" not in payload:
        return
    token = payload.rstrip("\r\n")
    found = spans.get(token)
    if (
        isinstance(part, SpanMessage)
        and found is not None
        and str(part.get("content-transfer-encoding", "")).strip().lower() == "base64"
        and _decodes_like_compat32(raw, *found)
    ):
        part._payload = ""  # type: ignore[attr-defined]
        part._span = memoryview(raw)[found[0] : found[1]]
        part._tail = payload[len(token) :]
        return
    part._payload = _with_runs(payload, raw, spans)  # type: ignore[attr-defined]


def _with_runs(text: str, raw: bytes, spans: dict[str, tuple[int, int]]) -> str:
    """``text`` with each token replaced by the run it stands for."""
    for token, (start, end) in spans.items():
        if token in text:
            text = text.replace(token, raw[start:end].decode("ascii"))
    return text


def _decodes_like_compat32(raw: bytes, start: int, end: int) -> bool:
    """Whether ``a2b_base64`` reads ``raw[start:end]`` as compat32 does: a whole number of
    4-character groups, ``=`` only as the last one or two (compat32 validates, else falls back
    to a lenient decoder)."""
    chars = end - start - raw.count(b"\n", start, end) - raw.count(b"\r", start, end)
    if chars % 4:
        return False
    first_pad = raw.find(b"=", start, end)
    if first_pad < 0:
        return True
    if end - first_pad > 6:
        return False
    tail = raw[first_pad:end].replace(b"\r", b"").replace(b"\n", b"")
    return tail in (b"=", b"==")
