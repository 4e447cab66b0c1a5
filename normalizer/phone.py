"""Phone numbers as the router stores them: E.164 (``+15550100``-style), or the caller id as sent.

Callers and texters reach the desk through carriers that write the number in every format, and
sometimes write none: a withheld caller arrives as ``anonymous``, ``Restricted`` or one of
Twilio's stand-in numbers (``+266696687`` spells ANONYMOUS on a keypad). Others send what is no
number at all: a short code (``72345``), an alphanumeric sender id (``ACME``), a Twilio Client
(``client:alice``) or a SIP address (``sip:bob@pbx.example.com``).

:func:`read_caller_id` sorts what a channel got into one of three: a *possible* number as E.164
(a carrier can deliver numbers from ranges the library does not know to be assigned yet, so
"possible", not "valid"); a withheld marker (nothing: the channel gives such a caller a per-call
identity, so withheld callers never become one shared requester called "+266696687"); anything
else kept as the raw sender id, shown and searchable but never taken for a phone number.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from normalizer.text import clean_line

__all__ = ["CallerId", "find_number", "read_caller_id", "to_e164"]

_MAX_INPUT_CHARS = 64
_IS_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE
# Twilio's documented stand-ins for a caller id it may not show: ANONYMOUS, RESTRICTED,
# UNKNOWN, BLOCKED, UNAVAILABLE typed on a keypad.
_WITHHELD_NUMBERS = frozenset({"+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253"})
# The caller-id texts carriers and Twilio use for "no number shown", compared whole (a SIP user
# called "unknown-printer" is somebody, not a withheld caller).
_WITHHELD_WORDS = frozenset(
    {
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "withheld",
        "blocked",
        "unavailable",
        "no caller id",
        "no caller",
        "unknown caller",
        "private number",
    }
)
_MAX_SENDER_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class CallerId:
    """Who a call or text came from: a number, a raw sender id, or nobody (withheld)."""

    phone: str | None = None  # E.164, for a possible number
    sender_id: str | None = None  # what the carrier sent, when it is no number

    @property
    def withheld(self) -> bool:
        return self.phone is None and self.sender_id is None


def read_caller_id(raw: str | None, default_region: str = "US") -> CallerId:
    """Sort a caller id into a number (E.164), a raw sender id, or withheld (both ``None``)."""
    if not isinstance(raw, str):
        return CallerId()
    text = clean_line(raw)
    if not text or text.casefold() in _WITHHELD_WORDS:
        return CallerId()
    phone = to_e164(text, default_region)  # None for a withheld stand-in number too
    if phone is not None:
        return CallerId(phone=phone)
    if _is_withheld_number(text):
        return CallerId()
    return CallerId(sender_id=text[:_MAX_SENDER_ID_CHARS])


def to_e164(raw: str | None, default_region: str = "US") -> str | None:
    """Return ``raw`` as an E.164 string, or ``None`` for a withheld, impossible or empty number.

    A number without a leading ``+`` is read as a national number of ``default_region``
    (ISO 3166 code). ``tel:`` URIs and ``sip:`` URIs whose user part is a number are accepted.
    A number is taken when its length is possible for its country, even if the library does
    not know its range to be in use (new ranges reach carriers before they reach the library).
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > _MAX_INPUT_CHARS or text.casefold() in _WITHHELD_WORDS:
        return None
    if _is_withheld_number(text):
        return None
    text = _user_part(text)
    if not any(c.isdigit() for c in text) or any(c.isalpha() for c in text):
        return None  # "alice", "ACME", "client:alice": no number, whatever a parser makes of it
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != _IS_POSSIBLE:
        return None
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164


def find_number(text: str, default_region: str = "US") -> str | None:
    """The first possible phone number written anywhere in ``text`` (a subject, a cover page)."""
    matches = phonenumbers.PhoneNumberMatcher(
        text[: _MAX_INPUT_CHARS * 16], default_region, leniency=phonenumbers.Leniency.POSSIBLE
    )
    for match in matches:
        e164: str = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if e164 not in _WITHHELD_NUMBERS:
            return e164
    return None


def _user_part(text: str) -> str:
    """``tel:+1…`` and ``sip:+1…@host;user=phone`` -> ``+1…``; anything else unchanged."""
    lowered = text.casefold()
    for scheme in ("tel:", "sip:", "sips:"):
        if lowered.startswith(scheme):
            return text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
    return text


def _is_withheld_number(text: str) -> bool:
    user = _user_part(text).strip()
    digits = "".join(c for c in user if c.isdigit())
    return user.startswith("+") and f"+{digits}" in _WITHHELD_NUMBERS
