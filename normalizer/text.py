"""Text as it may be stored and shown: the one place that decides which characters go.

Every converter passes what people wrote through :func:`clean_text` (bodies, transcripts,
messages) or :func:`clean_line` (subjects, names, one-line fields). NUL cannot be stored in a
PostgreSQL text column at all, and the other C0 controls (ESC, backspace, bare CR …) rewrite
terminals and logs; tab and newline are kept in multi-line text. CRLF and bare CR become LF.
"""

from __future__ import annotations

# C0 controls and DEL, but tab and newline: removed from multi-line text.
_TEXT_CONTROLS = dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A)] + [0x7F])
# Every C0 control and DEL, and the other characters str.splitlines() breaks at (NEL, LINE and
# PARAGRAPH SEPARATOR, which would start a new header line in a mail we write): a space in a
# one-line field (a tab or newline separates words).
_LINE_CONTROLS = dict.fromkeys([*range(0x20), 0x7F, 0x85, 0x2028, 0x2029], " ")


# The same characters as bytes: ASCII text (most mail) is cleaned by a byte table in one C pass,
# where ``str.translate`` looks every character up in the dict (a 4 KB body: ~6 us, not ~19).
_TEXT_CONTROL_BYTES = bytes(_TEXT_CONTROLS)


def clean_text(value: str) -> str:
    """Multi-line text without C0 controls but tab and newline; line ends become ``\\n``."""
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if value.isascii():
        return value.encode("ascii").translate(None, _TEXT_CONTROL_BYTES).decode("ascii")
    return value.translate(_TEXT_CONTROLS)


def clean_line(value: str) -> str:
    """A one-line field: every control or line break becomes a space, runs of spaces one, ends
    trimmed."""
    return " ".join(value.translate(_LINE_CONTROLS).split())


def has_controls(value: str, *, lines: bool = False) -> bool:
    """Whether ``value`` holds a character that :func:`clean_text`/:func:`clean_line` removes.

    With ``lines`` tab, CR and LF are allowed (a multi-line field checked before cleaning).
    """
    allowed = "\t\r\n" if lines else ""
    return any((ord(c) < 0x20 or ord(c) == 0x7F) and c not in allowed for c in value)
