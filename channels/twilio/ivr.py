"""The phone menu as data, and the decisions a call walks through. No I/O, no TwiML.

A :class:`Menu` is built by the gateway from ``[ivr]``. A caller's position in it is a *path*: the
digits chosen so far (``""`` is the top menu, ``"1"`` the submenu behind option 1, ``"12"`` option
2 in there). The path, the retry count and an offered ticket ref travel in the query string of
the ``action`` URLs spoc writes into its TwiML, so the server keeps no state between the steps
of a call (Twilio signs the URL, so the caller cannot change them).

Speech answers are matched to option labels by their words (``"my laptop is a broken device"``
-> option 1) or by a spoken digit (``"two"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "BusinessHours",
    "Menu",
    "MenuOption",
    "match_speech",
    "spoken_ref",
]

Action = Literal["voicemail", "dial"]
MAX_PATH_DIGITS = 8

_WORD_RE = re.compile(r"[a-z0-9]+")
_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "to": "2",
    "too": "2",
    "three": "3",
    "four": "4",
    "for": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_STOPWORDS = frozenset(
    "a an the my i i'm im is it its it's of for to with and or me please have has am on in "
    "press option number".split()
)
_ADD_WORDS = frozenset({"add", "existing", "same", "open"})


@dataclass(frozen=True, slots=True)
class MenuOption:
    """One choice. With ``options`` it opens a submenu (``prompt`` says what to choose)."""

    digit: str
    label: str
    category: str
    kind: str = "incident"
    action: Action = "voicemail"
    dial_number: str | None = None
    prompt: str | None = None
    options: tuple[MenuOption, ...] = ()

    @property
    def is_submenu(self) -> bool:
        return bool(self.options)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When the desk answers: ``opens <= local time < closes`` on ``days`` (0 = Monday)."""

    timezone: str = "UTC"
    days: frozenset[int] = frozenset(range(5))
    opens: time = time(8, 0)
    closes: time = time(18, 0)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        return local.weekday() in self.days and self.opens <= local.time() < self.closes


@dataclass(frozen=True, slots=True)
class Menu:
    """The whole ``[ivr]`` section as the voice handlers use it."""

    greeting: str = "Welcome to the IT service desk."
    options: tuple[MenuOption, ...] = ()
    gather_timeout_seconds: int = 5
    max_retries: int = 2
    default_digit: str | None = None
    recording_notice: str = (
        "This call is recorded so that we can help you. After the tone, please describe the "
        "problem, then hang up or press the pound key."
    )
    max_recording_seconds: int = 120
    transcribe: bool = True
    voice: str | None = None
    language: str = "en-US"
    hours: BusinessHours | None = None
    after_hours_message: str = (
        "The service desk is closed right now. Please leave a message and we will call you back."
    )
    recent_ticket_hours: float = 72.0
    add_to_ticket_digit: str = "9"

    def node(self, path: str) -> tuple[tuple[MenuOption, ...], MenuOption | None] | None:
        """The options at ``path`` and the option that opened it (None at the top), or None."""
        if len(path) > MAX_PATH_DIGITS:
            return None
        options, parent = self.options, None
        for digit in path:
            parent = next((o for o in options if o.digit == digit and o.is_submenu), None)
            if parent is None:
                return None
            options = parent.options
        return options, parent

    def option_at(self, path: str) -> MenuOption | None:
        """The option a full path ends on (``"12"``: option 2 of submenu 1)."""
        if not path:
            return None
        found = self.node(path[:-1])
        if found is None:
            return None
        return next((o for o in found[0] if o.digit == path[-1]), None)

    def default_option(self) -> MenuOption | None:
        if self.default_digit is None:
            return None
        return next((o for o in self.options if o.digit == self.default_digit), None)

    def prompt(self, path: str, offered_ref: str | None = None) -> str:
        """What the caller hears at ``path``: greeting (top only), the offer, every option."""
        found = self.node(path)
        options, parent = found if found is not None else ((), None)
        parts: list[str] = []
        if parent is None:
            parts.append(self.greeting)
            if offered_ref:
                parts.append(
                    f"You have an open ticket, {spoken_ref(offered_ref)}. "
                    f"To add to it, press {self.add_to_ticket_digit}."
                )
        elif parent.prompt:
            parts.append(parent.prompt)
        parts += [f"For {o.label}, press {o.digit}." for o in options]
        return " ".join(p.strip() for p in parts if p.strip())

    def hints(self, path: str) -> str:
        """Speech recognition hints: the option labels at ``path``."""
        found = self.node(path)
        return ", ".join(o.label for o in found[0]) if found else ""


def match_speech(speech: str, options: tuple[MenuOption, ...]) -> str | None:
    """The digit the caller meant by ``speech``, or None when it is unclear.

    The option whose label's words appear best in the answer wins, if at least half of them do
    and no other option ties; otherwise a short answer naming one digit (``"two"``, ``"press 2"``).
    """
    words = _WORD_RE.findall(speech.casefold())
    if not words:
        return None
    digits = {o.digit for o in options}
    spoken = [_DIGIT_WORDS.get(w, w) for w in words]
    said_digits = {d for d in spoken if d in digits}
    content = {w for w in words if w not in _STOPWORDS}
    scores: list[tuple[float, str]] = []
    for option in options:
        label = {w for w in _WORD_RE.findall(option.label.casefold()) if w not in _STOPWORDS}
        if label:
            scores.append((len(label & content) / len(label), option.digit))
    scores.sort(reverse=True)
    if scores and scores[0][0] >= 0.5 and (len(scores) == 1 or scores[1][0] < scores[0][0]):
        return scores[0][1]
    if len(said_digits) == 1 and len(words) <= 3:
        return str(said_digits.pop())
    return None


def wants_existing_ticket(speech: str) -> bool:
    """Whether a spoken answer asks to add to the offered ticket (``"add to my ticket"``)."""
    words = set(_WORD_RE.findall(speech.casefold()))
    return bool(words & _ADD_WORDS) and "ticket" in words


def spoken_ref(ref: str) -> str:
    """``"SD-42"`` -> ``"S D 4 2"``: a ticket ref read out one character at a time."""
    return " ".join(ch for ch in ref.upper() if ch.isalnum())
