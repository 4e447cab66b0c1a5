"""Session limits of the inbound SMTP server, as RFC 5321 and Postfix's defaults.

:class:`LimitedSMTP` is aiosmtpd's protocol with what it lacks for a server on the internet;
``channels.smtp`` builds its desk protocol on it. Config keys (``[smtp]``, through
``SMTPChannelSettings``):

``max_connections_per_client`` (50, Postfix's ``smtpd_client_connection_count_limit``)
    sessions at once from one client address; beyond: ``421 4.7.0 Too many connections from
    your address`` and the connection is closed, before any greeting.
``client_limit_exceptions`` (loopback, as Postfix's ``$mynetworks``)
    networks whose clients that cap does not count: a local proxy or load generator.
``max_errors`` (20, Postfix's ``smtpd_hard_error_limit``)
    error replies in a session without a delivered message; at the limit ``421 4.7.0 Too many
    errors`` and the connection is closed. Every 5xx counts, and every 4xx but 421 and 4.3.x
    (our own trouble: storage down or busy, which an MTA rightly retries in the same session).
    A 250 to DATA starts the count again.
``data_timeout_seconds`` (600)
    the whole message, from DATA to our reply. aiosmtpd's timer (``idle_timeout_seconds``)
    restarts on each command but never on bytes, so from DATA on it is the message's deadline:
    a slowloris trickling a byte every few seconds is cut off there. After the reply the idle
    timeout applies again.

Any timeout says ``421 4.4.2 Timeout exceeded`` before closing (aiosmtpd closes silently).
Command lines stay at aiosmtpd's 512 octets (RFC 5321 4.5.3.1.4; ``500 Command line too
long``, the session goes on).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP

from channels.networks import in_networks, ip_address, ip_networks

log = logging.getLogger(__name__)

TOO_MANY_FROM_CLIENT = b"421 4.7.0 Too many connections from your address\r\n"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors"
TIMEOUT_EXCEEDED = b"421 4.4.2 Timeout exceeded\r\n"


def counts_as_client_error(reply: str) -> bool:
    """Whether a reply counts against ``max_errors``: every 5xx, and every 4xx but ``421`` (the
    session ends anyway) and ``4.3.x`` (our own trouble, a database down or busy: not the
    client's fault, and a sending MTA keeps retrying in the same session)."""
    if reply[:1] == "5":
        return True
    return reply[:1] == "4" and not reply.startswith("421") and reply[4:8] != "4.3."


class ClientCounts:
    """Open sessions per client address, for ``max_connections_per_client``; addresses in
    ``exceptions`` are not counted (Postfix: ``smtpd_client_event_limit_exceptions``)."""

    def __init__(self, limit: int, exceptions: Sequence[str] = ()) -> None:
        self._limit = limit
        self._exceptions = ip_networks(exceptions)
        self._open: Counter[str] = Counter()

    def _exempt(self, host: str) -> bool:
        return in_networks(ip_address(host), self._exceptions)

    def admit(self, host: str) -> bool:
        if self._exempt(host):
            return True
        if self._open[host] >= self._limit:
            return False
        self._open[host] += 1
        return True

    def release(self, host: str) -> None:
        if host not in self._open:
            return  # exempt, never counted
        self._open[host] -= 1
        if self._open[host] <= 0:
            del self._open[host]


class LimitedSMTP(SMTP):
    """aiosmtpd's protocol with a per-client connection cap, an error limit, a DATA deadline
    and a 421 on timeouts (see the module docstring)."""

    def __init__(
        self,
        handler: Any,
        *,
        clients: ClientCounts,
        max_errors: int,
        data_timeout_seconds: float,
        **kw: Any,
    ):
        super().__init__(handler, **kw)
        self._clients = clients
        self._client_host: str | None = None  # counted in ``clients`` while set
        self._refused = False
        self._max_errors = max_errors
        self._data_timeout = data_timeout_seconds
        self._errors = 0
        self._last_reply = ""
        self._deadline = 0.0  # loop time when the session times out (see _reset_timeout)
        self._timer_armed = False  # whether _timeout_handle is a call still to come

    async def smtp_DATA(self, arg: str) -> None:
        self._start_data_deadline()
        try:
            await super().smtp_DATA(arg)
        finally:
            self._end_data_deadline()

    def _start_data_deadline(self) -> None:
        assert self.envelope is not None
        if self.envelope.rcpt_tos:  # else aiosmtpd answers 503 and DATA ends at once
            self._reset_timeout(self._data_timeout)

    def _end_data_deadline(self) -> None:
        """After our reply the client has the idle timeout again; a delivered message forgives
        the session's errors (Postfix: errors "without delivering mail")."""
        if self._last_reply.startswith("250"):
            self._errors = 0
        if self.transport is not None:
            self._reset_timeout()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the session's deadline to ``duration`` (the idle timeout) from now.

        aiosmtpd cancels its timer and schedules a new one on every command (a timer object and
        a heap entry per command, left in the loop's heap until it is cleaned). Here the armed
        timer stays when it is due no later than the new deadline; when it fires early it
        re-arms for the deadline (:meth:`_timer_fired`). A deadline moved earlier (the idle
        timeout after DATA's longer one) re-arms at once. The session times out at the same
        moment either way.
        """
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if (
            self._timer_armed
            and handle is not None
            and not handle.cancelled()
            and handle.when() <= self._deadline
        ):
            return
        if handle is not None:
            handle.cancel()
        self._timeout_handle = self.loop.call_at(self._deadline, self._timer_fired)
        self._timer_armed = True

    def _timer_fired(self) -> None:
        self._timer_armed = False
        if self.loop.time() < self._deadline:  # a command came meanwhile: not idle yet
            self._timeout_handle = self.loop.call_at(self._deadline, self._timer_fired)
            self._timer_armed = True
            return
        self._timeout_cb()

    def _timeout_cb(self) -> None:
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            log.info("SMTP %r: timeout, closing", self.session and self.session.peer)
            transport.write(TIMEOUT_EXCEEDED)
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        reply = status if isinstance(status, str) else status.decode("ascii", "replace")
        self._last_reply = reply
        if counts_as_client_error(reply):
            await self._count_error()

    async def _count_error(self) -> None:
        self._errors += 1
        if self._errors < self._max_errors or self.transport is None:
            return
        log.warning("SMTP %r: %d errors, closing", self.session and self.session.peer, self._errors)
        await super().push(TOO_MANY_ERRORS)
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client_host is None and not self._refused:  # not again after STARTTLS
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) else ""
            if not self._clients.admit(host):
                self._refuse(transport, peer)
                return
            self._client_host = host
        super().connection_made(transport)

    def _refuse(self, transport: asyncio.BaseTransport, peer: object) -> None:
        """Over ``max_connections_per_client``: 421 and hang up, no session started."""
        assert isinstance(transport, asyncio.WriteTransport)
        log.warning("SMTP connection from %r refused: too many from that address", peer)
        self._refused = True
        transport.write(TOO_MANY_FROM_CLIENT)
        transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        try:
            if not self._refused:
                super().connection_lost(error)
        finally:
            if self._client_host is not None:
                self._clients.release(self._client_host)
                self._client_host = None
