"""Phone numbers as the router stores them: E.164 (``+15550100``-style) or nothing.

Callers and texters reach the desk through carriers that write the number in every format, and
sometimes write none: a withheld caller arrives as ``anonymous``, ``Restricted`` or one of
Twilio's stand-in numbers (``+266696687`` spells ANONYMOUS on a keypad). :func:`to_e164` turns
what a channel got into E.164 when it is a valid number and into ``None`` otherwise, so a
withheld caller never becomes one shared requester called "+266696687".
"""

from __future__ import annotations

import phonenumbers

__all__ = ["to_e164"]

_MAX_INPUT_CHARS = 64
# Twilio's documented stand-ins for a caller id it may not show: ANONYMOUS, RESTRICTED,
# UNKNOWN, BLOCKED, UNAVAILABLE typed on a keypad.
_WITHHELD_NUMBERS = frozenset({"+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253"})
_WITHHELD_WORDS = (
    "anonymous",
    "restricted",
    "unknown",
    "private",
    "withheld",
    "blocked",
    "unavailable",
    "no caller",
)


def to_e164(raw: str | None, default_region: str = "US") -> str | None:
    """Return ``raw`` as an E.164 string, or ``None`` for a withheld, invalid or empty number.

    A number without a leading ``+`` is read as a national number of ``default_region``
    (ISO 3166 code). ``tel:`` URIs and ``sip:`` URIs whose user part is a number are accepted.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    lowered = text.casefold()
    if not text or len(text) > _MAX_INPUT_CHARS:
        return None
    if any(word in lowered for word in _WITHHELD_WORDS):
        return None
    for scheme in ("tel:", "sip:", "sips:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
            break
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None if e164 in _WITHHELD_NUMBERS else e164
