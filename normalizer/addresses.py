"""Email addresses: the one pattern that says "this is one address" for every channel.

Loose on purpose: real validation is "a mail to it arrives". What the pattern guarantees is that
the value is exactly one ``local@domain`` -- no whitespace or control character, none of
``<>()[],;:\\"``, one ``@``, a local part of at most 64 characters and a dotted domain of
labels of at most 63 -- so it cannot smuggle a second address or a header line into a mail we
write. Non-ASCII is allowed on both sides (SMTPUTF8 and IDN senders exist). Mail headers, the
REST API, Slack profiles, outbound mail and ``config.toml`` all check addresses with it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["EMAIL_ADDRESS", "MAX_ADDRESS_CHARS", "is_email_address", "valid_address"]

MAX_ADDRESS_CHARS: Final = 320

_NOT_IN_ADDRESS: Final = r"\s@<>()\[\],;:\\\"\x00-\x1f\x7f"
_LOCAL_PART: Final = rf"[^{_NOT_IN_ADDRESS}]{{1,64}}"
_LABEL: Final = rf"[^{_NOT_IN_ADDRESS}.]{{1,63}}"
EMAIL_ADDRESS: Final = re.compile(rf"{_LOCAL_PART}@(?:{_LABEL}\.)+{_LABEL}")


def is_email_address(value: str) -> bool:
    """Whether ``value`` is exactly one address as written (no trimming, no folding)."""
    return len(value) <= MAX_ADDRESS_CHARS and EMAIL_ADDRESS.fullmatch(value) is not None


def valid_address(addr: str) -> str | None:
    """The address stripped and case-folded if it is one ``local@domain``, else None."""
    addr = addr.strip().casefold()
    return addr if is_email_address(addr) else None
