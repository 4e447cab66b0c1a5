"""The contract between a mailbox poller (``channels.imap``) and where it keeps its place.

Like :mod:`normalizer.intake`, this sits in the shared kernel so that ``channels`` and
``router`` never import each other: the gateway wires a router-backed implementation
(``router.mailboxes``) into each IMAP channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far one folder of one mailbox has been taken in.

    ``last_uid``: every message with a UID up to it (under this ``uidvalidity``) is committed
    and moved out (or flagged); messages above it may still be waiting. A new ``uidvalidity``
    makes ``last_uid`` meaningless: the folder is taken in again from UID 1, and the dedupe on
    Message-ID keeps what was committed before from becoming a second contact.
    """

    uidvalidity: int
    last_uid: int


class Checkpoints(Protocol):
    """Checkpoints by ``(mailbox, folder)`` and failed attempts by message, stored in the
    database, so whichever gateway polls the mailbox next goes on from them. All return after
    commit; all raise :class:`~normalizer.intake.TemporaryIntakeError` when the database is
    down. Saving a checkpoint forgets the failures of the messages it passed."""

    async def load(self, mailbox: str, folder: str) -> Checkpoint | None: ...

    async def save(self, mailbox: str, folder: str, checkpoint: Checkpoint) -> None: ...

    async def count_failure(self, mailbox: str, folder: str, uidvalidity: int, uid: int) -> int:
        """Count one more failed attempt at a message; the attempts so far, by every poller."""
        ...


class PollerLock(Protocol):
    """At most one poller per mailbox across every gateway sharing the database.

    ``acquire`` returns False when another process holds it (try again later); ``held`` is
    False once the lock was lost (its database connection went away): stop polling at once.
    """

    async def acquire(self) -> bool: ...

    async def held(self) -> bool: ...

    async def release(self) -> None: ...
