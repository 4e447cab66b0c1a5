"""How the desk's mails read: the subject and body of an ``email.ack`` or ``email.reply``.

What it does
    Words one outbox payload's event (:mod:`channels.outbound.events`) as a mail: the subject
    tagged with the ref once (``[SD-42] Printer on fire``), ``Re:`` once on everything but the
    acknowledgement, the acknowledgement's greeting, the one-address paragraph and signature.
    A payload written before the transports worded (no ``event``) keeps its ``subject`` and
    ``text``.

Config keys (:class:`EmailWording`, from ``[email]``)
    ``single_address_notice``: the paragraph that tells a requester, once, that the desk has
    one address (``{address}``, ``{legacy}`` filled in); None never tells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels.outbound.events import (
    change_sentence,
    event_of,
    fact,
)
from normalizer.outbox_events import ACK, ESCALATED, REPLY, STATUS

DEFAULT_SINGLE_ADDRESS_NOTICE = (
    "Please note: the IT service desk has one address now, {address}. Your message to {legacy} "
    "reached us, but please write to {address} from now on."
)


@dataclass(frozen=True, slots=True)
class EmailWording:
    single_address_notice: str | None = DEFAULT_SINGLE_ADDRESS_NOTICE


@dataclass(frozen=True, slots=True)
class MailText:
    subject: str
    text: str


def tagged_subject(ref: str, subject: str) -> str:
    """``[SD-42] subject``; a subject that carries the tag already keeps it once."""
    tag = f"[{ref}]"
    if tag.casefold() in subject.casefold():
        return subject
    return f"{tag} {subject}".rstrip() if subject else tag


def reply_subject(ref: str, subject: str) -> str:
    """``Re: [SD-42] subject``, with neither ``Re:`` nor the tag doubled."""
    tagged = tagged_subject(ref, subject)
    return tagged if tagged[:3].casefold() == "re:" else f"Re: {tagged}"


def mail_text(payload: Mapping[str, Any], wording: EmailWording) -> MailText:
    """The subject and body for one payload; raises UnknownEventError for an unknown event."""
    event = event_of(payload)
    if event is None:  # worded before the upgrade
        return MailText(fact(payload, "subject"), fact(payload, "text"))
    ref, subject = fact(payload, "ticket_ref"), fact(payload, "ticket_subject")
    text = fact(payload, "text")
    if event == ACK:
        return MailText(tagged_subject(ref, subject), _ack_body(payload, wording))
    if event in (STATUS, ESCALATED):
        text = change_sentence(event, payload, ref, text)
    assert event in (REPLY, STATUS, ESCALATED)
    return MailText(reply_subject(ref, subject), text)


def _ack_body(payload: Mapping[str, Any], wording: EmailWording) -> str:
    ref, subject = fact(payload, "ticket_ref"), fact(payload, "ticket_subject")
    name = fact(payload, "requester_name")
    hello = f"Hello {name}," if name else "Hello,"
    about = f": {subject}" if subject else ""
    body = (
        f"{hello}\n\n"
        f"Thank you for contacting us. Your request is logged as {ref}{about}.\n\n"
        f"To add information, reply to this email and keep [{ref}] in the subject.\n\n"
        f"-- \n{fact(payload, 'from_name')}\n"
    )
    notice = single_address_paragraph(payload.get("single_address_notice"), wording)
    return f"{notice}\n\n{body}" if notice else body


def single_address_paragraph(facts: object, wording: EmailWording) -> str | None:
    """The one-address paragraph for the ack's ``single_address_notice`` facts, or None."""
    template = wording.single_address_notice
    if not template or not isinstance(facts, Mapping):
        return None
    address, legacy = facts.get("address"), facts.get("legacy")
    if not isinstance(address, str) or not isinstance(legacy, str):
        return None
    return template.format(address=address, legacy=legacy)
