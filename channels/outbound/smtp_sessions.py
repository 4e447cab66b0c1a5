"""Open sessions to the ``[outbound_smtp]`` relay, reused from one message to the next.

What it does
    Like Postfix's connection cache (``smtp_connection_cache_on_demand``), keeps up to
    ``max_sessions`` connected, greeted (EHLO, STARTTLS, AUTH) aiosmtplib sessions and runs
    each transaction on an idle one when there is one, on a new one otherwise. A completed
    transaction leaves the session ready for the next MAIL (RFC 5321 4.1.4); after a refused
    one aiosmtplib sends RSET itself.

Limits (:class:`SessionLimits`)
    ``max_sessions`` (at most this many transactions at once, open or idle; the gateway sets it
    to the outbox's ``batch_size``), ``idle_seconds`` (an unused session is closed with QUIT
    after this long; Postfix's ``smtp_connection_cache_time_limit``), ``max_age_seconds`` and
    ``max_messages`` (a session is not reused past either; Postfix's
    ``smtp_connection_reuse_time_limit`` and ``smtp_connection_reuse_count_limit``).

Results
    A transaction's own outcome is returned or raised unchanged. The one exception: on a
    *reused* session that turns out to be dead before the relay answered MAIL (EOF, reset, or
    ``421`` to MAIL), nothing of the message has been accepted or refused, so it is run once
    more on a new connection, and only that attempt's outcome counts. A session that failed or
    was cancelled mid-transaction is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

import aiosmtplib
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import Default

log = logging.getLogger(__name__)

T = TypeVar("T")

QUIT_TIMEOUT_SECONDS = 5.0  # a relay that does not answer QUIT does not hold up a stop


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_sessions: int = 20
    idle_seconds: float = 5.0
    max_age_seconds: float = 300.0
    max_messages: int = 100

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {self.max_sessions!r}")


class RelaySession(aiosmtplib.SMTP):
    """An aiosmtplib session that remembers when it opened, how much it sent, and whether the
    relay has answered the current transaction's MAIL."""

    opened_at: float = 0.0
    idle_since: float = 0.0
    messages: int = 0
    mail_answered: bool = False

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: float | Literal[Default.token] | None = Default.token,  # noqa: ASYNC109 - aiosmtplib.SMTP.mail
    ) -> SMTPResponse:
        try:
            response = await super().mail(
                sender, options=options, encoding=encoding, timeout=timeout
            )
        except aiosmtplib.SMTPResponseException:
            self.mail_answered = True
            raise
        self.mail_answered = True
        return response


def _stale(exc: BaseException, session: RelaySession) -> bool:
    """True if a reused session died before the relay took any part of the message."""
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return exc.code == 421  # the relay is closing this session (RFC 5321 3.8)
    if isinstance(exc, TimeoutError):
        return False  # a slow relay: trying again would only double the wait
    return isinstance(exc, OSError) and not session.mail_answered  # incl. SMTPServerDisconnected


class RelaySessions:
    """The open sessions to one relay, for one event loop."""

    def __init__(self, open_session: Callable[[], RelaySession], limits: SessionLimits) -> None:
        self._new = open_session  # an unconnected session with the relay's settings
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.max_sessions)
        self._idle: list[RelaySession] = []  # most recently used last
        self._reaper: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.opened = 0  # connections made, for logs and tests

    async def run(self, transaction: Callable[[RelaySession], Awaitable[T]]) -> T:
        """Run one mail transaction on an idle session, else on a new one."""
        async with self._slots:
            session = self._take_idle()
            if session is not None:
                try:
                    return await self._run(session, transaction)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    if not _stale(exc, session):
                        raise
                    log.info("outbound relay closed a reused session (%s); reconnecting", exc)
            session = self._new()
            try:
                await session.connect()
            except BaseException:
                session.close()
                raise
            self.opened += 1
            session.opened_at = time.monotonic()
            return await self._run(session, transaction)

    async def close(self) -> None:
        """QUIT every idle session; sessions still in use are closed when they finish."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(session) for session in idle))
        if self._closing:
            await asyncio.gather(*self._closing)

    async def _run(
        self, session: RelaySession, transaction: Callable[[RelaySession], Awaitable[T]]
    ) -> T:
        session.mail_answered = False
        try:
            result = await transaction(session)
        except BaseException:
            session.close()  # its state is unknown: never reused
            raise
        session.messages += 1
        self._release(session)
        return result

    def _take_idle(self) -> RelaySession | None:
        while self._idle:
            session = self._idle.pop()
            if session.is_connected and not self._worn(session):
                return session
            self._quit_later([session])
        return None

    def _worn(self, session: RelaySession) -> bool:
        limits = self.limits
        return (
            session.messages >= limits.max_messages
            or time.monotonic() - session.opened_at >= limits.max_age_seconds
        )

    def _release(self, session: RelaySession) -> None:
        if self._closed or self._worn(session):
            self._quit_later([session])
            return
        session.idle_since = time.monotonic()
        self._idle.append(session)
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(
                self.limits.idle_seconds, self._reap
            )

    def _reap(self) -> None:
        """Close the sessions idle for ``idle_seconds``; look again when the next one is due."""
        self._reaper = None
        now = time.monotonic()
        limit = self.limits.idle_seconds
        expired = [s for s in self._idle if now - s.idle_since >= limit]
        self._idle = [s for s in self._idle if now - s.idle_since < limit]
        self._quit_later(expired)
        if self._idle:
            due = min(s.idle_since for s in self._idle) + limit - now
            self._reaper = asyncio.get_running_loop().call_later(max(due, 0.0), self._reap)

    def _quit_later(self, sessions: list[RelaySession]) -> None:
        for session in sessions:
            task = asyncio.get_running_loop().create_task(_quit(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


async def _quit(session: RelaySession) -> None:
    """A polite QUIT; the session is closed whatever the relay does."""
    if not session.is_connected:
        session.close()
        return
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await session.quit(timeout=QUIT_TIMEOUT_SECONDS)
    session.close()
