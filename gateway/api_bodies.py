"""The bodies of the REST API's agent actions, one pydantic model each.

``POST /api/contacts`` has its own model beside its converter (:class:`normalizer.api.ContactBody`);
these are the rest. :func:`normalizer.bodies.load_body` validates them and names the dotted field
of the first problem; the field descriptions feed the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictStr

from normalizer.bodies import CLEAN_TEXT, NOT_BLANK, Body, Text, Token, at_most_bytes

MAX_REPLY_BYTES = 1024 * 1024
MAX_REASON_CHARS = 2000

# The statuses an agent may set ("new" is only where tickets start): router.tickets agrees.
SettableStatus = Literal["open", "pending", "resolved", "closed"]


class ReplyBody(Body):
    """``POST /api/tickets/{ref}/reply``."""

    text: Annotated[Text, NOT_BLANK, AfterValidator(at_most_bytes(MAX_REPLY_BYTES))] = Field(
        description="What to send to the requester, on the channel they used last."
    )


class EscalateBody(Body):
    """``POST /api/tickets/{ref}/escalate``."""

    reason: Annotated[StrictStr, Field(max_length=MAX_REASON_CHARS), CLEAN_TEXT, NOT_BLANK] = Field(
        description="Why the ticket moves up; shown in its events and to a Slack requester."
    )
    group: Annotated[Token, NOT_BLANK] | None = Field(
        default=None,
        description="The [[groups]] name to move to; without it, the next tier up.",
    )


class StatusBody(Body):
    """``POST /api/tickets/{ref}/status``."""

    status: SettableStatus = Field(description="The ticket's new status.")
    note: Annotated[StrictStr, Field(max_length=MAX_REASON_CHARS), CLEAN_TEXT] = Field(
        default="", description="Why, for the ticket's events (and the requester on resolve)."
    )
