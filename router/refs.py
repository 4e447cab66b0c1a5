"""Ticket references: ``SD-42`` is ticket 42 of the desk whose prefix is ``SD``."""

from __future__ import annotations

import re

_REF = re.compile(r"^([A-Za-z][A-Za-z0-9]{0,9})-(\d{1,18})$")


def format_ref(prefix: str, ticket_id: int) -> str:
    return f"{prefix}-{ticket_id}"


def parse_ref(prefix: str, ref: str) -> int | None:
    """The ticket id behind ``ref``, or None when it is not one of this desk's refs."""
    m = _REF.match(ref.strip())
    if m is None or m.group(1).upper() != prefix.upper():
        return None
    return int(m.group(2))
