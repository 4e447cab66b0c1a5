"""What the router tells a requester, as facts: the semantic events of ``email.*``, ``slack.*``
and ``sms.*`` outbox payloads, and the sentences every transport words alike.

The router decides *that* a requester hears something and with what facts; the transports
(:mod:`channels.outbound.email_text`, :mod:`channels.outbound.slack`,
:mod:`channels.outbound.sms`) decide how it reads. A payload's ``event`` names the occasion
(the names are defined in ``normalizer.outbox_events``):

``ack``
    A new ticket was logged. Facts: ``ticket_ref``, ``ticket_subject``, ``requester_name``
    (may be null); email also ``single_address_notice`` (``{"address", "legacy"}`` when the
    requester is to be told, once, about the desk's one address; else null).
``reply``
    An agent (or a tool's public comment) answers. Facts: ``ticket_ref``, ``text`` as written;
    email also ``ticket_subject``.
``status``
    The ticket's status changed (resolved, closed). Facts: ``ticket_ref``, ``status``, ``text``
    (the note, may be empty); email also ``ticket_subject``.
``escalated``
    The ticket moved to another group. Facts: ``ticket_ref``, ``group``, ``text`` (the reason).

A payload without ``event`` was written before the transports rendered (its ``subject`` and
``text`` are the finished wording); it is delivered as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from normalizer.outbox_events import ESCALATED, REQUESTER_EVENTS, STATUS


class UnknownEventError(ValueError):
    """The payload names an event this version cannot word."""


def event_of(payload: Mapping[str, Any]) -> str | None:
    """The payload's event; None for a payload already worded (written before the upgrade)."""
    event = payload.get("event")
    if event is None:
        return None
    if event not in REQUESTER_EVENTS:
        raise UnknownEventError(f"unknown event {event!r}")
    return str(event)


def fact(payload: Mapping[str, Any], key: str) -> str:
    """A text fact of the payload; "" when it is absent or not text."""
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def change_sentence(
    event: str, payload: Mapping[str, Any], ref: str, note: str, show: Callable[[str], str] = str
) -> str:
    """The sentence of a ``status`` or ``escalated`` event: ``SD-42 is resolved: <note>``,
    ``SD-42 is now with <group>: <note>``. ``ref`` and ``note`` as the transport shows them;
    ``show`` turns the status or group name into that form (mrkdwn escaping for Slack)."""
    if event == STATUS:
        return f"{ref} is {show(fact(payload, 'status'))}" + (f": {note}" if note else ".")
    if event == ESCALATED:
        return f"{ref} is now with {show(fact(payload, 'group'))}" + (f": {note}" if note else ".")
    raise ValueError(f"{event!r} is no change of the ticket")
