"""Later versions of a contact: a chat message edited or deleted after the desk stored it.

A contact's ``text`` stays what first arrived (it may have been acknowledged, forwarded,
answered). A channel that learns of an edit or a deletion hands a :class:`ContactRevision` to
:class:`Revisions`; the router records it on the contact's ticket as an event
(``contact.edited`` with the new text, ``contact.deleted``) and removes nothing. A revision of
a message the desk never stored (channel chatter, a bot's post) is not recorded. Neither opens
a ticket nor sends an acknowledgement.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from normalizer.contact import Channel


class RevisionKind(enum.StrEnum):
    EDITED = "edited"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ContactRevision:
    """``external_ids``: every key the revised contact may be stored under (a Slack message
    is ``C1:ts``, or ``shortcut:C1:ts`` when a shortcut made it a ticket). ``revised_at`` is the
    channel's own stamp of the change (Slack's ``edited.ts``, the deletion's ``ts``): a retry of
    the same revision carries the same stamp and is recorded once."""

    channel: Channel
    external_ids: tuple[str, ...]
    kind: RevisionKind
    revised_at: str
    text: str | None = None  # the new text (edits)


@dataclass(frozen=True, slots=True)
class RevisionResult:
    ticket_ref: str
    contact_id: int
    duplicate: bool


class Revisions(Protocol):
    """Records a revision after commit; ``None`` when no stored contact has those keys.

    Raises :class:`~normalizer.intake.TemporaryIntakeError` when the database is unavailable.
    """

    async def revise(self, revision: ContactRevision) -> RevisionResult | None: ...
