"""What of a message stays the same however it reached us: the bytes without delivery traces.

The same message arrives over SMTP and again as a copy in an IMAP (journal) mailbox, but not as
the same bytes: every MTA on the way prepends ``Received``, the delivering server adds
``Return-Path``, ``Delivered-To`` and its spam verdict, and IMAP hands lines out with CRLF where a
saved file may have LF. :func:`delivery_independent_bytes` removes exactly those differences, so
a message without a Message-ID gets one synthetic id on every path (``normalizer.email``).

Only trace and delivery-verdict fields are dropped; every field the author's client wrote, and
the body, take part. Two messages that differ in anything else keep different ids.
"""

from __future__ import annotations

import re

__all__ = ["TRACE_FIELDS", "delivery_independent_bytes", "header_field"]

# Header fields added in transit or at delivery (RFC 5321 trace fields and their relatives).
TRACE_FIELDS = frozenset(
    {
        "return-path",
        "received",
        "delivered-to",
        "x-original-to",
        "x-delivered-to",
        "envelope-to",
        "x-envelope-to",
        "x-envelope-from",
        "authentication-results",
        "received-spf",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "x-virus-scanned",
    }
)
_TRACE_PREFIXES = ("x-spam-",)
_LINE_END = re.compile(rb"\r\n|\r(?!\n)")
_HEADER_END = re.compile(rb"\n\n")
_FIELD_START = re.compile(rb"^(?=[^ \t\n])", re.MULTILINE)


def _fields(header_block: bytes) -> list[bytes]:
    """The header block split into whole fields (a field keeps its folded lines)."""
    return [f for f in _FIELD_START.split(header_block) if f]


def _name(field: bytes) -> str:
    return field.partition(b":")[0].strip().decode("ascii", "replace").lower()


def _is_trace(field: bytes) -> bool:
    name = _name(field)
    return name in TRACE_FIELDS or name.startswith(_TRACE_PREFIXES)


def _split(raw: bytes) -> tuple[bytes, bytes]:
    text = _LINE_END.sub(b"\n", raw)
    end = _HEADER_END.search(text)
    if end is None:
        return text if text.endswith(b"\n") else text + b"\n", b""
    return text[: end.start() + 1], text[end.end() :]


def delivery_independent_bytes(raw: bytes) -> bytes:
    """``raw`` with LF line ends, no trace fields and no trailing blank lines."""
    header, body = _split(raw)
    kept = b"".join(
        f if f.endswith(b"\n") else f + b"\n" for f in _fields(header) if not _is_trace(f)
    )
    return kept + b"\n" + body.rstrip(b"\n")


def header_field(raw: bytes, name: str) -> str | None:
    """The first ``name`` field's unfolded value (ASCII-decoded), or None when there is none."""
    header, _ = _split(raw)
    wanted = name.lower()
    for field in _fields(header):
        if _name(field) == wanted:
            value = field.partition(b":")[2].decode("ascii", "replace")
            return " ".join(value.split())
    return None
