"""The address of a MAIL or RCPT command, read the quick way when it is a plain one.

aiosmtpd reads ``<local@domain>`` with the email package's RFC 5322 header parser
(``get_angle_addr``): dozens of token objects per address, and a ``typing.Protocol`` class
defined anew on every call. That was a tenth of the event loop's time per message. Nearly every
address a real client sends is a plain dot-atom ``<local@domain>`` followed by nothing or by
``SP`` parameters; for those the answer is the text between the brackets and what follows the
spaces, which :class:`AddressSMTP` takes with one regular expression. Anything else (quoted
local parts, source routes, address literals, comments, non-ASCII, ``<>``) goes to aiosmtpd's
parser as before. ``tests/unit/channels/test_smtp_address.py`` checks both give the same answer.
"""

from __future__ import annotations

import re

from aiosmtpd.smtp import SMTP

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 atext, ASCII only
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# The parser also takes the spaces (and comments) after ">": only spaces are taken here, and a
# "(" after them (a comment) is left to the parser.
_PLAIN_ANGLE_ADDRESS = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>[ \t]*(?![ \t(])")


def plain_address(arg: str) -> tuple[str, str] | None:
    """``(address, rest)`` for a plain ``<local@domain> rest``, else None (ask the parser)."""
    match = _PLAIN_ANGLE_ADDRESS.match(arg)
    if match is None:
        return None
    return match[1], arg[match.end() :]


class AddressSMTP(SMTP):
    """aiosmtpd's protocol reading plain MAIL/RCPT addresses without the header parser."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = plain_address(arg)
        if plain is None:
            return super()._getaddr(arg)
        address, rest = plain
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest
