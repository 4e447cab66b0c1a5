"""Enforcing the one address: contacts that reached the desk through a legacy address.

A desk that consolidates half a dozen old mailboxes keeps them working -- mail to an alias
(``[email] aliases``) is handled exactly like mail to ``email.address`` -- but tells each
requester, once, in the acknowledgement, that the desk's one address is ``email.address`` from
now on (the ack carries the facts, ``single_address_notice``; the email transport words the
paragraph). The contact records which address it reached (its ``to``), the contact event says
``legacy_address``, and the gateway counts contacts per legacy address (``/metrics``), so the
desk can see when one can be retired.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import Contact
from router.schema import insert_ignore, notices
from router.settings import RouterSettings

SINGLE_ADDRESS = "single-address"


def legacy_address(contact: Contact, settings: RouterSettings) -> str | None:
    """The legacy address this contact reached, or None when it reached the desk address."""
    desk = settings.desk_address.casefold()
    if desk in contact.recipients:
        return None
    legacy = {a.casefold() for a in settings.desk_aliases}
    return next((r for r in contact.recipients if r in legacy), None)


def owes_single_address_notice(
    conn: Connection, requester_id: int | None, settings: RouterSettings
) -> bool:
    """Whether this requester's ack tells them about the one address (not told before, and
    telling is on). The ack carries the facts; ``channels.outbound`` words the paragraph."""
    if not settings.tell_single_address or requester_id is None:
        return False
    told = conn.execute(
        sa.select(notices.c.at).where(
            notices.c.requester_id == requester_id, notices.c.notice == SINGLE_ADDRESS
        )
    ).first()
    return told is None


def record_notice(
    conn: Connection, requester_id: int, ticket_id: int, now: datetime, notice: str
) -> None:
    """Remember that the requester was told ``notice`` (in this ticket's ack)."""
    conn.execute(
        insert_ignore(conn, notices, "requester_id", "notice"),
        {"requester_id": requester_id, "notice": notice, "ticket_id": ticket_id, "at": now},
    )
