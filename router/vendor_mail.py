"""Mail from an email forward target: a vendor's helpdesk answering, by mail, a ticket we
forwarded to it, tagged with our ref.

What happens
    The vendor's mail threads onto the ticket like any reply (``router.router``) and is
    recorded. It is the tool's voice, not the requester's: it leaves the ticket's last channel
    as the requester left it, and no reply is ever addressed to the vendor
    (``RouterSettings.forward_addresses`` in ``router.replies``). When the target has
    ``relay_replies`` (the default), its new text -- the quote of our forward cut off
    (``normalizer.reply_text``) -- goes to the requester on their last channel, exactly as a
    public comment from Jira does (``router.replies.queue_reply``): the desk stays the one
    voice. ``relay_replies = false`` keeps the vendor's mail internal. The quote is cut before
    the write transaction (``vendor_answer``, on a worker thread: the parser costs about 4 ms
    per 1,000 characters, and the first ``RELAY_PARSE_CHARS`` are all it reads).

Never relayed
    Out-of-office replies, bounces and other automatic mail (they take ``router.system_mail``
    and never reach this module), list and bulk mail, mail on a ticket the target does not
    hold, and a reply with nothing above its quote.

Loops
    The relayed answer is an outbound reply, not a contact: nothing forwards it. The vendor's
    own mail is never forwarded back to it (``router.forwards``), only to other targets.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import AutoClass, Channel, Contact
from normalizer.reply_text import reply_and_cut
from router.replies import Said, tell_requester
from router.schema import forwards
from router.settings import ForwardRule, RouterSettings

RELAY_PARSE_CHARS = 20_000


def vendor_answer(text: str) -> str:
    """What a vendor's mail adds above its quote; the whole text when it quotes nothing in
    its first ``RELAY_PARSE_CHARS`` characters (a long answer is never cut short)."""
    new, cut = reply_and_cut(text[:RELAY_PARSE_CHARS])
    return new if cut or len(text) <= RELAY_PARSE_CHARS else text


def vendor_target(settings: RouterSettings, contact: Contact) -> ForwardRule | None:
    """The email target ``contact`` comes from, when it is mail from a target's address."""
    if contact.channel is not Channel.EMAIL or not contact.sender.email:
        return None
    sender = contact.sender.email.casefold()
    return next((r for r in settings.forwards if r.address == sender), None)


def relay_vendor_reply(
    conn: Connection,
    settings: RouterSettings,
    target: ForwardRule,
    ticket_id: int,
    ref: str,
    contact: Contact,
    answer: str | None,
    now: datetime,
) -> str:
    """Relay the vendor's ``answer`` (:func:`vendor_answer` of its mail, cut before the
    transaction; None: cut here) to the requester if it should go; what became of it, for the
    contact's event (the channel it went out on, ``off``, or ``not sent: <why>``)."""
    if not target.relay_replies:
        return "off"
    if contact.auto is not AutoClass.HUMAN:
        return f"not sent: {contact.auto.value} mail"
    holds = conn.execute(
        sa.select(forwards.c.ticket_id).where(
            forwards.c.ticket_id == ticket_id, forwards.c.target == target.name
        )
    ).first()
    if holds is None:
        return f"not sent: {ref} was not forwarded to {target.name}"
    text = (answer if answer is not None else vendor_answer(contact.text)).strip()
    if not text:
        return "not sent: nothing above the quoted history"
    return tell_requester(conn, settings, ticket_id, ref, Said.reply(text), now)
