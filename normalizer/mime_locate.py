"""Find one MIME part of a raw message by its part path without parsing the rest.

An email attachment is stored as a part path into the contact's raw message (``"1"``,
``"2.0"``: sub-part indexes from the top, :attr:`normalizer.contact.Attachment.part`). Serving
it parsed the whole message to walk to that part: every other part's body too. Here only the
headers of the multiparts on the way are parsed; their bodies are split at their boundary lines
(RFC 2046 5.1.1: the CRLF before a delimiter belongs to the delimiter), and the part's own bytes
are returned as a span of the raw message, which ``normalizer.email.attachment_bytes(span, "")``
decodes alone.

It reads the common shape only: a step into anything but a multipart (an attached message, a
part whose default type depends on its parent, as in ``multipart/digest``), a part that is
itself a message or a multipart, and a multipart its boundaries do not close give None.
:func:`attachment_at` checks the bytes against the attachment's sha256 and falls back to the
whole parse when they differ, so a message Python's parser reads otherwise costs time, never a
wrong file.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import hashlib
import re
from typing import Final

from normalizer.email import attachment_bytes

__all__ = ["attachment_at", "part_span"]

_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")
_PARSER: Final = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def attachment_at(raw: bytes, part: str, sha256: str) -> bytes | None:
    """The attachment at ``part`` of ``raw`` whose bytes hash to ``sha256``: decoded from its
    own span when this walk finds it, else from the whole message; None if neither holds it."""
    span = part_span(raw, part)
    if span is not None:
        data = attachment_bytes(raw[span[0] : span[1]], "")
        if data is not None and hashlib.sha256(data).hexdigest() == sha256:
            return data
    data = attachment_bytes(raw, part)
    if data is None or hashlib.sha256(data).hexdigest() != sha256:
        return None
    return data


def part_span(raw: bytes, path: str) -> tuple[int, int] | None:
    """``(start, end)`` of the part at ``path`` in ``raw`` (its header and body), or None when
    this walk cannot tell."""
    start, end = 0, len(raw)
    for step in path.split(".") if path else ():
        if not (step.isascii() and step.isdigit()):  # "²".isdigit(), but int("²") fails
            return None
        children = _children(raw, start, end)
        if children is None or int(step) >= len(children):
            return None
        start, end = children[int(step)]
    headers = _headers(raw, start, end)
    if headers is None or headers.get_content_maintype() in ("message", "multipart"):
        return None  # what these decode to depends on how the whole parse read their insides
    return start, end


def _headers(raw: bytes, start: int, end: int) -> email.message.Message | None:
    """The header of the part at ``raw[start:end]`` (none at all: an empty one)."""
    if raw.startswith((b"\r\n", b"\n"), start):
        return email.message.Message()
    blank = _HEADER_END.search(raw, start, end)
    if blank is None:
        return None
    return _PARSER.parsebytes(raw[start : blank.end()])


def _children(raw: bytes, start: int, end: int) -> list[tuple[int, int]] | None:
    """The spans of the sub-parts of the multipart at ``raw[start:end]``, or None."""
    blank = _HEADER_END.search(raw, start, end)
    headers = _headers(raw, start, end)
    if blank is None or headers is None:
        return None
    if headers.get_content_maintype() != "multipart" or headers.get_content_subtype() == "digest":
        return None
    boundary = headers.get_boundary()
    if not boundary:
        return None
    try:
        wanted = boundary.encode("latin-1")
    except UnicodeEncodeError:  # RFC 2231 may decode to any character: not findable in bytes
        return None
    delimiter = re.compile(
        rb"(?:^|\r?\n)--" + re.escape(wanted) + rb"(--)?[ \t]*(?:\r?\n|$)",
        re.MULTILINE,
    )
    children: list[tuple[int, int]] = []
    part_start: int | None = None
    for match in delimiter.finditer(raw, blank.start(), end):
        if part_start is not None:
            children.append((part_start, match.start()))
        if match.group(1):  # the close delimiter
            return children
        part_start = match.end()
    return None  # never closed: leave it to the whole parse
