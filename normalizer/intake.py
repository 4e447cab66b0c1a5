"""The contract between channels and the router: how a contact is handed in, what comes back.

Channels depend on this module, never on ``router``; the gateway wires a router-backed
:class:`Intake` into every channel. The errors are typed so each channel maps them to its own
protocol's answer at its edge (SMTP 451/550, HTTP 503/400, Slack no-ack, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from normalizer.contact import Contact


class IntakeError(Exception):
    """Base of everything the intake path raises on purpose."""


class TemporaryIntakeError(IntakeError):
    """The contact could not be stored now (database down, disk full); the sender should retry.

    Nothing of the contact was committed. SMTP answers 451 4.3.0, HTTP 503.
    """


class ContactRejectedError(IntakeError):
    """The contact is refused for good (no usable sender, malformed); retrying will not help.

    ``field`` names what was wrong where there is one. SMTP answers 550, HTTP 400.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IdempotencyKeyConflict(ContactRejectedError):
    """The contact's idempotency key is already stored for different content (an API client
    reusing an ``external_id`` for another request). Nothing was stored. HTTP answers 409; a
    channel that does not know this error refuses it like any :class:`ContactRejectedError`.
    """


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What became of a contact once it is durably committed.

    ``duplicate`` is true when ``(channel, external_id)`` was already stored: nothing new was
    written, and ``ticket_ref``/``contact_id`` are the earlier ones. ``created`` is true when the
    contact opened a new ticket. ``thread_reason`` says why it joined the ticket it did.
    """

    ticket_ref: str
    ticket_id: int
    contact_id: int
    created: bool
    duplicate: bool
    thread_reason: str
    acknowledged: bool = False  # an acknowledgement was queued in the outbox
    queued: bool = False  # anything was queued in the outbox (an ack, a forward, a relayed reply)
    # Why no acknowledgement was queued when one was considered ("role-address", "bounce", …).
    ack_suppressed: str | None = None
    # Automatic mail that matches no ticket is kept in the quarantine instead (kind "system"):
    # then ticket_ref is "", ticket_id and contact_id 0, and this is the quarantine item's id.
    quarantine_id: int | None = None
    legacy_address: str | None = None  # the legacy alias it reached instead of the desk address


class Intake(Protocol):
    """The one entry point every channel calls. Returns only after the commit."""

    async def submit(self, contact: Contact) -> IntakeResult: ...


@dataclass(frozen=True, slots=True)
class QuarantineReceipt:
    """Where something that could not be turned into a contact was kept."""

    id: int
    duplicate: bool  # the same bytes from the same source were kept already


class Quarantine(Protocol):
    """Where a channel keeps what it cannot turn into a contact: raw, with the reason.

    Nothing that arrived is dropped: a message that fails to parse or to route, again and again,
    is kept here (``spoc quarantine list/show/replay``, ``GET /api/quarantine``) instead of
    blocking the messages behind it. ``source`` names where it came from (``smtp``,
    ``imap:legacy-helpdesk``, …); ``raw_type`` is a MIME type (``message/rfc822``). Keeping the
    same bytes from the same source twice stores them once. Returns only after the commit;
    raises :class:`TemporaryIntakeError` when the database is unavailable.
    """

    async def keep(
        self, raw: bytes, *, source: str, reason: str, raw_type: str = "message/rfc822"
    ) -> QuarantineReceipt: ...
