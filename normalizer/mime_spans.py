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
import secrets
import string
from collections.abc import Iterator
from typing import Any

from normalizer.single_part import parse_single_part

__all__ = ["base64_runs", "parse_lean", "parse_lean_within", "span_bytes"]

MIN_RUN_BYTES = 8 * 1024  # ~105 lines of 76: below that the parser's line walk costs little
# Runs are found on a map of the bytes, one window at a time (a window's map is a copy): every
# base64 character or line break becomes "a", anything else "-". Finding the first stretch of
# MIN_RUN_BYTES "a"s and then the next "-" is C work (bytes.find), where a regex would test the
# character class byte by byte.
_RUN_MAP = bytes(
    0x61 if chr(b) in string.ascii_letters + string.digits + "+/=\r\n" else 0x2D for b in range(256)
)
_LINE_MAP = bytes(0x72 if b == 0x0D else 0x6E if b == 0x0A else c for b, c in enumerate(_RUN_MAP))
_WINDOW_BYTES = 128 * 1024


# A run in the raw bytes: start, end, and its number of base64 characters if known
_Span = tuple[int, int, int | None]


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


def span_bytes(part: email.message.Message) -> int:
    """How many bytes of ``raw`` a part's body is a span of (0: its body is held as text)."""
    span = getattr(part, "_span", None)
    return 0 if span is None else len(span)


def parse_lean(raw: bytes, min_run_bytes: int | None = None) -> email.message.Message:
    """``email.message_from_bytes(raw)`` (compat32), holding base64 bodies of at least
    ``min_run_bytes`` (default ``MIN_RUN_BYTES``) as spans."""
    return _parse_with(raw, _runs(raw, min_run_bytes))


def parse_lean_within(raw: bytes, max_outside_bytes: int) -> email.message.Message | None:
    """:func:`parse_lean`, or None without parsing if more than ``max_outside_bytes`` of
    ``raw`` lie outside the base64 bodies it would hold as spans."""
    runs = _runs(raw)
    if len(raw) - sum(end - start for start, end, _ in runs) > max_outside_bytes:
        return None
    return _parse_with(raw, runs)


def _parse_with(raw: bytes, runs: list[tuple[int, int, int | None]]) -> email.message.Message:
    parser = email.parser.BytesParser(_class=SpanMessage)
    if not runs:
        single = parse_single_part(raw, SpanMessage)
        return parser.parsebytes(raw) if single is None else single
    view = memoryview(raw)
    nonce = secrets.token_hex(8)
    spans: dict[str, _Span] = {}
    pieces: list[bytes | memoryview] = []
    at = 0
    for start, end, chars in runs:
        end -= 2 if raw[end - 2 : end] == b"\r\n" else 1  # the run's last line break stays
        token = f"SPOCSPAN{nonce}N{len(spans)}E"  # E: N1 must not be a prefix of N10
        spans[token] = (start, end, chars)
        pieces += [view[at:start], token.encode("ascii")]
        at = end
    pieces.append(view[at:])
    skeleton = b"".join(pieces)
    del pieces
    msg = parser.parsebytes(skeleton)
    for part in msg.walk():
        _give_back(part, raw, spans)
    return msg


def base64_runs(raw: bytes, min_bytes: int | None = None) -> list[tuple[int, int]]:
    """Where ``raw`` has at least ``min_bytes`` (default ``MIN_RUN_BYTES``) of whole lines of
    base64 characters, with no blank line among them and each ending in a line break (spans
    end after it)."""
    return [(start, end) for start, end, _ in _runs(raw, min_bytes)]


def _runs(raw: bytes, min_bytes: int | None = None) -> list[tuple[int, int, int | None]]:
    """:func:`base64_runs`, each with the number of base64 characters in it if known."""
    least = MIN_RUN_BYTES if min_bytes is None else min_bytes
    found: list[tuple[int, int, int | None]] = []
    for start, end in _class_runs(raw, least):
        found += _split_at_blank_lines(raw, start, end, least)
    return found


def _split_at_blank_lines(
    raw: bytes, start: int, end: int, least: int
) -> list[tuple[int, int, int | None]]:
    """The whole lines between the blank lines of one stretch; none if it has a lone CR (the
    parser would break lines there too; such text is left alone). The usual attachment, even
    lines from some point on, is checked in one pass from there (:func:`_even_lines`)."""
    pieces: list[tuple[int, int, int | None]] = []
    while True:
        even = _even_lines(raw, start, end)
        if even is not None:  # no blank line and no lone CR from here on
            return pieces + _whole_lines(raw, start, end, least, even)
        blank = _first_blank_line(raw, start, end)
        stop = end if blank is None else blank[0] + 1
        if raw.count(b"\r", start, stop) != raw.count(b"\r\n", start, stop):
            return []
        pieces += _whole_lines(raw, start, stop, least)
        if blank is None:
            return pieces
        start = blank[1]


def _even_lines(raw: bytes, start: int, end: int) -> tuple[int, int] | None:
    """``(width, eol)`` if ``raw[start:end]`` is lines of ``width`` bytes (the last may be
    shorter and lack its break), each base64 characters and the same ``eol``-byte line break
    (CRLF or LF); None if not (then the general checks decide). Compared a window at a time
    with the map such lines must have, so in C and without copying the whole run."""
    first = raw.find(b"\n", start, end)
    if first < 0:
        return None
    eol = 2 if first > start and raw[first - 1] == 0x0D else 1
    width = first + 1 - start
    if width <= eol or width > _WINDOW_BYTES:  # a blank line; or lines too long to map whole
        return None
    full_end = start + (end - start) // width * width
    lines = min((full_end - start) // width, max(4, _WINDOW_BYTES // width))
    block = (b"a" * (width - eol) + b"rn"[2 - eol :]) * lines
    at = start
    step = min(len(block), 4 * width)  # a short first look: a stretch not even fails early
    while at < full_end:
        stop = min(full_end, at + step)
        step = len(block)
        want = block if stop - at == len(block) else block[: stop - at]
        if raw[at:stop].translate(_LINE_MAP) != want:
            return None
        at = stop
    tail = raw[full_end:end].translate(_LINE_MAP)  # a shorter last line, or part of one
    if tail.endswith(b"rn"[2 - eol :]):
        tail = tail[:-eol]
        if not tail:
            return None  # a blank line
    return (width, eol) if not tail.strip(b"a") else None


def _class_runs(raw: bytes, least: int) -> Iterator[tuple[int, int]]:
    """Each longest stretch of at least ``least`` base64 characters and line breaks."""
    needle = b"a" * least
    size = len(raw)
    at = 0
    while size - at >= least:
        window_end = min(size, at + max(_WINDOW_BYTES, 2 * least))
        mapped = raw[at:window_end].translate(_RUN_MAP)
        found = mapped.find(needle)
        if found < 0:  # a stretch may begin in the last least-1 bytes: look there again
            at = window_end if window_end == size else window_end - least + 1
            continue
        start = at + found
        stop = mapped.find(b"-", found + least)
        del mapped  # one window's map at a time
        end = at + stop if stop >= 0 else _class_end(raw, window_end)
        yield start, end
        at = end


def _class_end(raw: bytes, at: int) -> int:
    """The first byte from ``at`` on that is neither a base64 character nor a line break."""
    size = len(raw)
    while at < size:
        window_end = min(size, at + _WINDOW_BYTES)
        stop = raw[at:window_end].translate(_RUN_MAP).find(b"-")
        if stop >= 0:
            return at + stop
        at = window_end
    return size


def _first_blank_line(raw: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The first match of ``\\n\\r?\\n`` in ``raw[start:end]``."""
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf < 0 else crlf + 1)
    if lf >= 0:
        return lf, lf + 2
    return None if crlf < 0 else (crlf, crlf + 3)


def _whole_lines(
    raw: bytes, start: int, end: int, least: int, even: tuple[int, int] | None = None
) -> list[tuple[int, int, int | None]]:
    began_inside = start > 0 and raw[start - 1] != 0x0A
    if began_inside:  # from the next line on
        start = raw.find(b"\n", start, end) + 1
        if start == 0:
            return []
    end = raw.rfind(b"\n", start, end) + 1
    if end - start < least or raw[start] in b"\r\n":
        return []
    chars = None
    if even is not None and not began_inside:  # even lines: the line breaks' bytes, counted
        width, eol = even
        chars = end - start - eol * -(-(end - start) // width)
    return [(start, end, chars)]


def _give_back(part: email.message.Message, raw: bytes, spans: dict[str, _Span]) -> None:
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


def _with_runs(text: str, raw: bytes, spans: dict[str, _Span]) -> str:
    """``text`` with each token replaced by the run it stands for."""
    for token, (start, end, _) in spans.items():
        if token in text:
            text = text.replace(token, raw[start:end].decode("ascii"))
    return text


def _decodes_like_compat32(raw: bytes, start: int, end: int, chars: int | None) -> bool:
    """Whether ``a2b_base64`` reads ``raw[start:end]`` as compat32 does: a whole number of
    4-character groups, ``=`` only as the last one or two (compat32 validates, else falls back
    to a lenient decoder)."""
    if chars is None:
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
