"""The requester's mail thread, for the ``References`` of what the desk mails them.

``References`` lists the conversation root first (RFC 5322 3.6.4): the requester's mails and
ours in the order they came and went, each acknowledgement right after the mail it answers.
A forward target's mails (a vendor's helpdesk answering by mail) are threaded onto the ticket
too, but they are the tool's conversation with the desk, not the requester's: their
Message-IDs never reach the requester. Past ``MAX_REFERENCES`` the root and the newest ids are
kept.
"""

from __future__ import annotations

from collections.abc import Set

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.acks import ACK
from router.schema import contacts, message_ids, outbox

MAX_REFERENCES = 20


def thread_references(
    conn: Connection, ticket_id: int, not_from: Set[str] = frozenset()
) -> list[str]:
    """The ids of the ticket's mails with its requester, root first; mail from an address
    in ``not_from`` (case-folded forward target addresses) is left out."""
    rows = conn.execute(
        sa.select(contacts.c.external_id, contacts.c.direction, contacts.c.from_addr)
        .where(
            contacts.c.ticket_id == ticket_id,
            contacts.c.channel.in_(("email", "fax")),
            contacts.c.external_id.contains("@"),
        )
        .order_by(contacts.c.id)
    ).all()
    tools = {
        r.external_id
        for r in rows
        if r.direction == "in" and (r.from_addr or "").casefold() in not_from
    }
    mails = list(dict.fromkeys(r.external_id for r in rows if r.external_id not in tools))
    in_thread = set(mails)
    answered_by: dict[str, list[str]] = {}
    loose: list[str] = []  # acks of mails no longer on this ticket
    for ack_id, answered in _acks(conn, ticket_id):
        if answered is not None and answered in in_thread:
            answered_by.setdefault(answered, []).append(ack_id)
        elif answered not in tools:
            loose.append(ack_id)
    acked = {a for ids in answered_by.values() for a in ids} | set(loose)
    known = conn.execute(
        sa.select(message_ids.c.message_id)
        .where(message_ids.c.ticket_id == ticket_id, message_ids.c.message_id.contains("@"))
        .order_by(message_ids.c.message_id)
    ).scalars()
    # ids of a merged ticket's mails and acks: after the root, in a stable order
    others = [m for m in known if m not in tools and m not in in_thread and m not in acked]
    chain: list[str] = [] if mails else loose + others
    for n, mail in enumerate(mails):
        chain += [mail, *answered_by.get(mail, ())]
        if n == 0:
            chain += loose + others
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1) :]
    return chain


def _acks(conn: Connection, ticket_id: int) -> list[tuple[str, str | None]]:
    """The ticket's acknowledgements as (their id, the id of the mail each answers), in the
    order they were queued."""
    payloads = conn.execute(
        sa.select(outbox.c.payload)
        .where(outbox.c.ticket_id == ticket_id, outbox.c.kind == ACK)
        .order_by(outbox.c.id)
    ).scalars()
    return [
        (str(p["message_id"]), p.get("in_reply_to"))
        for p in payloads
        if isinstance(p, dict) and p.get("message_id")
    ]
