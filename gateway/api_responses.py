"""The shapes the REST API answers with, as pydantic models: the OpenAPI document's schemas.

The handlers build their JSON from the router's read models (``router.tickets``,
``router.outbox_admin``, ``router.quarantine``); these models only *describe* it, for
:mod:`gateway.openapi`, and the schemathesis run checks every answer against them. Objects
allow keys beyond the ones listed (``forwards`` joins the ticket JSON with forwarding), so a
client must ignore what it does not know; every listed key is always present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from normalizer.contact import Channel
from router.outbox_admin import STATUSES as OUTBOX_STATUSES
from router.quarantine import KINDS as QUARANTINE_KINDS
from router.tickets import STATUSES as TICKET_STATUSES

TICKET_KINDS = ("incident", "service_request")
PRIORITIES = ("P1", "P2", "P3", "P4")
REPLAY_OUTCOMES = ("stored", "duplicate", "kept", "failed")


def one_of(values: tuple[str, ...], description: str) -> Any:
    """A string field that takes one of ``values`` (the router's own tuple: one source)."""
    return Field(description=description, json_schema_extra={"enum": list(values)})


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(Response):
    """Every refusal: what is wrong, and the dotted path of the value at fault when there is
    one (``from.email``)."""

    error: str = Field(description="What is wrong, in words.")
    field: str | None = Field(default=None, description="The parameter or body field at fault.")


class Requester(Response):
    id: int
    name: str | None
    email: str | None
    phone: str | None = Field(description="E.164, e.g. +14155550100.")
    slack_user_id: str | None


class Attachment(Response):
    filename: str
    content_type: str
    size: int = Field(ge=0)
    sha256: str


class ContactJSON(Response):
    id: int
    channel: Channel
    direction: str = one_of(("in", "out"), "in: from the requester; out: from the desk.")
    received_at: datetime
    sender: str | None = Field(alias="from", description="The address or number it came from.")
    subject: str
    text: str
    external_id: str
    attachments: list[Attachment]


class Event(Response):
    at: datetime
    type: str = Field(description="created, contact.added, escalated, status.changed, …")
    detail: dict[str, Any]


class TicketSummary(Response):
    ref: str = Field(examples=["SD-42"])
    status: str = one_of(TICKET_STATUSES, "Where the ticket is in its life.")
    kind: str = one_of(TICKET_KINDS, "What the requester needs.")
    category: str | None
    priority: str = one_of(PRIORITIES, "P1 is the most urgent.")
    owner: str = Field(description="The tier-1 group: the one owner for the ticket's life.")
    group: str = Field(description="The group working on it now.")
    tier: float = Field(description="The tier of that group (1, 1.5, 2, …).")
    channel: Channel = Field(description="The channel of the ticket's first contact.")
    subject: str
    created_at: datetime
    updated_at: datetime


class Ticket(TicketSummary):
    """``GET /api/tickets/{ref}``: the ticket with its requester, contacts and events."""

    requester: Requester
    contacts: list[ContactJSON]
    events: list[Event]


class TicketPage(Response):
    tickets: list[TicketSummary] = Field(description="Newest first.")
    next: str | None = Field(description="Pass back as cursor for the next page; null: no more.")


class Queued(Response):
    status: str = one_of(("queued",), "The reply waits in the outbox for delivery.")


class OutboxItem(Response):
    id: int
    kind: str = Field(description="email.ack, email.reply, slack.reply, sms.reply, forward.…")
    status: str = one_of(OUTBOX_STATUSES, "pending: will be sent; dead: given up on.")
    ticket_ref: str | None
    target: str | None = Field(description="Where it goes (an address, a channel, a target).")
    attempts: int = Field(ge=0)
    created_at: datetime
    next_attempt_at: datetime | None
    leased_until: datetime | None
    done_at: datetime | None
    last_error: str | None
    idempotency_key: str


class OutboxPage(Response):
    items: list[OutboxItem] = Field(description="Newest first.")
    next: str | None = Field(description="Pass back as cursor for the next page; null: no more.")


class QuarantineItem(Response):
    id: int
    kind: str = one_of(QUARANTINE_KINDS, "system: automatic mail; error: could not be processed.")
    reason: str
    source: str
    raw_type: str
    size: int = Field(ge=0)
    sha256: str
    sender: str | None = Field(alias="from")
    subject: str | None
    received_at: datetime
    replayed_at: datetime | None
    replayed_as: str | None
    last_replay_error: str | None


class QuarantinePage(Response):
    items: list[QuarantineItem] = Field(description="Newest first.")
    next: int | None = Field(description="Pass back as before for the next page; null: no more.")


class ReplayOutcome(Response):
    id: int
    outcome: str = one_of(REPLAY_OUTCOMES, "stored on ticket_ref, or why not.")
    ticket_ref: str | None
    error: str | None
