"""The contract between the IVR (``channels.twilio``) and where it keeps each call's progress.

Twilio's call-status callback says that a call ended, not where in the menu the caller was; it
is configured on the number in the console, so spoc cannot put the menu state into its URL as it
does for every other step. When a caller hangs up before leaving a message, the channel makes
a "call back" contact from the call's :class:`CallProgress`. Behind a load balancer that
callback may reach another instance than the menu steps did, so the gateway backs this
contract with the database (``router.calls``); like :mod:`normalizer.mailbox`, it sits in the
shared kernel so that ``channels`` and ``router`` never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CallProgress:
    """Where one call is: what the call-status step needs to word a call-back contact."""

    path: str | None = None  # the menu path chosen; None: no choice yet
    offered_ref: str | None = None  # the caller chose to add to this ticket
    after_hours: bool = False
    recording: bool = False  # the caller reached <Record>: its action request may be under way
    finished: bool = False  # a message was taken or the call was put through


class CallJournal(Protocol):
    """Each call's progress by CallSid. Every method may raise when its storage is down; the
    IVR then goes on without it (a call-back contact may lack the choice, never the number)."""

    async def chose(self, call_sid: str, progress: CallProgress) -> None:
        """Record the caller's place in the menu (every field but ``finished``)."""
        ...

    async def finish(self, call_sid: str) -> None:
        """The call needs no (more) call-back: a message was taken, the call was put through,
        or its call-back contact was made."""
        ...

    async def get(self, call_sid: str) -> CallProgress | None: ...

    async def wait_finished(self, call_sid: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for :meth:`finish` (on any instance); True if it was."""
        ...
