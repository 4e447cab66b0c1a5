"""Ticket refs: ``SD-42`` is ticket 42 of the desk whose prefix is ``SD``. The one ref pattern.

Every place that reads a ref (the REST path, ``spoc tickets show``, ``[SD-42]`` subject tags,
the IVR's "add to ticket" step) goes through :data:`REF_PATTERN`: a prefix of an ASCII letter
and up to nine ASCII letters or digits, a hyphen, and 1-18 ASCII digits (ids are 64-bit).
ASCII only on purpose: ``\\d`` and case-insensitive ``[A-Z]`` would also take fullwidth or
Devanagari digits (``SD-\\uff11``) and the Kelvin sign, and ``int()`` would resolve them to a
ticket.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REF_PATTERN", "format_ref", "is_prefix", "is_ref", "parse_ref", "subject_refs"]

_PREFIX: Final = r"[A-Za-z][A-Za-z0-9]{0,9}"
_NUMBER: Final = r"[0-9]{1,18}"
REF_PATTERN: Final = rf"{_PREFIX}-{_NUMBER}"

_REF: Final = re.compile(rf"({_PREFIX})-({_NUMBER})", re.ASCII)
_PREFIX_RE: Final = re.compile(_PREFIX, re.ASCII)
_SUBJECT_TAG: Final = re.compile(rf"\[({REF_PATTERN})\]", re.ASCII)


def format_ref(prefix: str, ticket_id: int) -> str:
    return f"{prefix}-{ticket_id}"


def is_prefix(value: str) -> bool:
    """Whether ``value`` can be a desk's prefix (``[tickets] prefix``), the part before ``-``."""
    return _PREFIX_RE.fullmatch(value) is not None


def is_ref(value: str) -> bool:
    """Whether ``value`` is exactly one ref (of any desk), nothing around it."""
    return _REF.fullmatch(value) is not None


def parse_ref(prefix: str, ref: str) -> int | None:
    """The ticket id behind ``ref``, or None when it is not one of this desk's refs."""
    m = _REF.fullmatch(ref.strip())
    if m is None or m.group(1).upper() != prefix.upper():
        return None
    return int(m.group(2))


def subject_refs(subject: str) -> tuple[str, ...]:
    """The ``[SD-42]`` tags in a subject, upper-cased, first occurrence first."""
    return tuple(dict.fromkeys(m.upper() for m in _SUBJECT_TAG.findall(subject)))
