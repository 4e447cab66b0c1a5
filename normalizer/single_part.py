"""Parse a one-part message (a plain-text mail) without the email package's line walk.

``email.message_from_bytes`` (compat32) walks a message line by line through its feed parser:
for a 4 KB plain-text mail, the usual desk mail, that walk is most of the parse, and the body's
lines are only joined back into the payload at the end. A message whose header block is clean
-- CRLF line ends, every line a ``Name:`` field or its continuation, ended by an empty line --
and whose Content-Type is neither ``multipart/*`` nor ``message/*`` is built here instead: its
fields cut where the parser cuts them, valued as :meth:`email.policy.Compat32.header_source_parse`
values them, and everything after the empty line as its payload. Anything else (bare CR or LF
in the header block, a Unix ``From `` line, a field name with odd bytes, a missing empty line,
a multipart) gives None, and the caller parses as before.

The message built is the one the parser builds (the same fields, payload, defects and
defaults), held to it by ``tests/unit/normalizer/test_single_part.py`` on generated mail,
the shared corpus and CPython's own test messages.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Callable

__all__ = ["parse_single_part"]

# The start of a header line as the feed parser reads one (its ``headerRE`` without the Unix
# ``From `` line, and with at least one character of name): a field name and its colon, or a
# continuation.
_FIELD_LINE = re.compile(r"[\041-\071\073-\176]+:|[ \t]")
_BARE_LINE_END = re.compile(r"\r(?!\n)|(?<!\r)\n")
_PARTS = ("multipart", "message")


def parse_single_part(
    raw: bytes, factory: Callable[[], email.message.Message] = email.message.Message
) -> email.message.Message | None:
    """``email.message_from_bytes(raw, _class=factory)`` for a clean one-part message, else
    None (the caller parses it as before)."""
    text = raw.decode("ascii", "surrogateescape")
    end = text.find("\r\n\r\n")
    if end <= 0:
        return None
    head = text[:end]
    if _BARE_LINE_END.search(head) is not None:
        return None
    msg = factory()
    name = ""
    value: list[str] = []
    for line in head.split("\r\n"):
        field = _FIELD_LINE.match(line)
        if field is None:
            return None
        if line[0] in " \t":  # a continuation line
            if not name:
                return None
            value.append(line)
            continue
        if name:
            msg.set_raw(name, "\r\n".join(value))
        colon = field.end()
        name, value = line[: colon - 1], [line[colon:].lstrip(" \t")]
    msg.set_raw(name, "\r\n".join(value))
    if msg.get_content_maintype() in _PARTS:
        return None
    msg.set_payload(text[end + 4 :])
    return msg
