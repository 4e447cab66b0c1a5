"""The names of the events in outbox payloads, written by the router and read by the transports
in ``channels/outbound``: defined here once, in the layer both import.

Requester events (``email.*``, ``slack.*``, ``sms.*`` payloads; their facts and wording are in
``channels.outbound.events``): :data:`ACK` a new ticket was logged, :data:`REPLY` an agent
answers, :data:`STATUS` the ticket was resolved or closed, :data:`ESCALATED` it moved to another
group.

Forward events (``forward.*`` payloads, docs/forwarding.md): what happened to a ticket that a
``[[forward]]`` target is told about.
"""

from __future__ import annotations

from typing import Final

ACK: Final = "ack"
REPLY: Final = "reply"
STATUS: Final = "status"
ESCALATED: Final = "escalated"
REQUESTER_EVENTS: Final = frozenset({ACK, REPLY, STATUS, ESCALATED})

TICKET_CREATED: Final = "ticket.created"
TICKET_UPDATED: Final = "ticket.updated"
TICKET_ESCALATED: Final = "ticket.escalated"
TICKET_RESOLVED: Final = "ticket.resolved"
CONTACT_ADDED: Final = "contact.added"
FORWARD_EVENTS: Final = frozenset(
    {TICKET_CREATED, TICKET_UPDATED, TICKET_ESCALATED, TICKET_RESOLVED, CONTACT_ADDED}
)
