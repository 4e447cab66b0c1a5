"""Inbound SMTP: the desk's own mail server, one aiosmtpd protocol per connection in our loop.

What it does
    Listens on ``[smtp] host:port`` and accepts mail for the desk address and its aliases
    only (never a relay), and -- as RFC 5321 section 4.5.1 requires -- for ``postmaster`` at
    every domain it answers for (and bare ``<postmaster>``), plus ``abuse`` there with
    ``accept_abuse``. Such mail goes to the desk like any other; it is never acknowledged.
    Each message is turned into a ``Contact`` by ``normalizer.email.contact_from_email`` and
    handed to the intake; the ``250`` after DATA
    is sent only once ``intake.submit`` has returned, i.e. once the contact is committed.

Config keys (:class:`SMTPChannelSettings`; its defaults are ``[smtp]``'s, and
``Config.smtp_settings()`` builds it from that section and ``[email]``)
    ``host``, ``port`` (0 picks a free port; read it back from :attr:`SMTPChannel.port`),
    ``max_message_bytes`` (advertised as SIZE), ``max_recipients``, ``max_connections``,
    ``idle_timeout_seconds``, ``desk_address`` and ``aliases`` (from ``[email]``),
    ``hostname`` and ``ident`` (the greeting), ``loop_marker`` (our ``X-Loop`` value),
    ``max_received_headers``, ``accept_abuse``, ``trusted_authserv_ids`` (from ``[email]``).

Replies
    ``250 2.0.0 Ok: queued as SD-42``   committed (also for a duplicate: the earlier ticket)
    ``550 5.7.1 Relaying denied``        RCPT to a domain that is not ours
    ``550 5.1.1 No such recipient here`` RCPT to one of our domains, but not the desk or an alias
    ``452 4.5.3 Too many recipients``    more than ``max_recipients`` RCPT in one transaction
    ``552 ...``                          over ``max_message_bytes`` (MAIL SIZE= or actual DATA)
    ``554 5.4.0 Too many hops``          more than ``max_received_headers`` Received headers
    ``250 2.0.0 Ok: kept for review as quarantine 7``
                                         with a quarantine (``spoc serve`` always has one): the
                                         intake refused the contact for good, or converting or
                                         routing it failed unexpectedly -- the raw message is
                                         kept with the reason instead of being lost; also for
                                         automatic mail that matches no ticket (kind system)
    ``550 5.6.0 <why>``                  without a quarantine: the intake refused the contact
    ``451 4.3.0 Temporary failure...``   the intake (or the quarantine) could not commit, or,
                                         without a quarantine, anything unexpected
    ``421 4.7.0 Too many connections``   more than ``max_connections`` sessions at once
    ``421 4.3.2 Service shutting down``  a new transaction while the channel stops

Idempotency key
    The message's ``Message-ID`` (the contact's ``external_id``, chosen by the converter): a
    client that retries after a lost ``250`` gets the same ticket back, not a second one.

DATA ends only on ``<CRLF>.<CRLF>`` (aiosmtpd reads CRLF-terminated lines), so bare-LF
"SMTP smuggling" payloads stay inside the message that carried them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import string
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.base import Channel
from normalizer.contact import Contact, ContactStep
from normalizer.email import contact_from_email
from normalizer.intake import (
    ContactRejectedError,
    Intake,
    IntakeResult,
    Quarantine,
    TemporaryIntakeError,
)

log = logging.getLogger(__name__)

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down"
TOO_MANY_CONNECTIONS = b"421 4.7.0 Too many connections\r\n"

# Parse big messages off the loop so one 25 MB mail does not stall every other session. 32 KiB:
# sanitising and converting a 250 KB HTML body takes 40-70 ms here (bench/loop_lag.py), ~8 ms
# per 32 KiB; a plain 4 KB mail (~0.2 ms) is cheaper to parse than the hop to a thread.
_PARSE_IN_THREAD_BYTES = 32 * 1024
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_UNSAFE_REPLY = re.compile(r"[^\x20-\x7e]+")


def fold_address(address: str) -> str:
    """Lower-case ASCII letters only: long s (U+017F) or Kelvin (U+212A) never fold into ours."""
    return address.translate(_ASCII_LOWER)


def count_received_headers(raw: bytes) -> int:
    """How many ``Received`` header fields the message's header block holds."""
    end = _HEADER_END.search(raw)
    return len(_RECEIVED.findall(raw if end is None else raw[: end.start()]))


def _reply_text(text: str, limit: int = 200) -> str:
    """One printable ASCII line, safe to put after an SMTP reply code."""
    return _UNSAFE_REPLY.sub(" ", text).strip()[:limit] or "Message refused"


@dataclass(frozen=True, slots=True)
class SMTPChannelSettings:
    desk_address: str
    aliases: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_bytes: int = 26_214_400
    max_recipients: int = 50
    max_connections: int = 200
    idle_timeout_seconds: float = 300.0
    hostname: str | None = None  # the greeting's name; None: this host's FQDN
    ident: str = "spoc ESMTP"
    loop_marker: str | None = None  # our X-Loop value; None: the desk address
    max_received_headers: int = 30
    accept_abuse: bool = False  # also take abuse@ at our domains (postmaster@ always)
    trusted_authserv_ids: tuple[str, ...] = ()  # [email]: the MX whose Authentication-Results count

    def __post_init__(self) -> None:
        for key in ("max_message_bytes", "max_recipients", "max_connections"):
            if getattr(self, key) < 1:
                raise ValueError(f"smtp.{key} must be at least 1, got {getattr(self, key)!r}")
        if self.idle_timeout_seconds <= 0:
            raise ValueError(
                f"smtp.idle_timeout_seconds must be positive, got {self.idle_timeout_seconds!r}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"smtp.port must be 0..65535, got {self.port!r}")

    @property
    def our_addresses(self) -> frozenset[str]:
        return frozenset(fold_address(a) for a in (self.desk_address, *self.aliases))

    @property
    def our_domains(self) -> frozenset[str]:
        return frozenset(a.rpartition("@")[2] for a in self.our_addresses)

    def accepted_recipient(self, folded: str) -> str | None:
        """The address to deliver ``folded`` (ASCII-lower-cased) to, or None to refuse it.

        Ours, an alias, ``postmaster@`` one of our domains (bare ``postmaster`` is the desk
        domain's), and ``abuse@`` one of them with ``accept_abuse``.
        """
        if folded in self.our_addresses:
            return folded
        if folded == "postmaster":
            return f"postmaster@{fold_address(self.desk_address).rpartition('@')[2]}"
        local, _, domain = folded.rpartition("@")
        if domain in self.our_domains and (
            local == "postmaster" or (local == "abuse" and self.accept_abuse)
        ):
            return folded
        return None


class _DeskHandler:
    """The aiosmtpd hooks: who may be a recipient, and DATA -> Contact -> intake -> reply."""

    def __init__(
        self, channel: SMTPChannel, intake: Intake, quarantine: Quarantine | None = None
    ) -> None:
        self._channel = channel
        self._intake = intake
        self._quarantine = quarantine
        settings = channel.settings
        self._settings = settings
        self._our_domains = settings.our_domains
        self._max_recipients = settings.max_recipients
        self._max_hops = settings.max_received_headers
        self._loop_marker = settings.loop_marker or settings.desk_address
        self._rcpt_attempts: weakref.WeakKeyDictionary[Envelope, int] = weakref.WeakKeyDictionary()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._channel.closing:
            asyncio.get_running_loop().call_soon(_close_transport, server)
            return SHUTTING_DOWN
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        attempts = self._rcpt_attempts.get(envelope, 0) + 1
        self._rcpt_attempts[envelope] = attempts
        if attempts > self._max_recipients:
            return "452 4.5.3 Too many recipients"
        folded = self._settings.accepted_recipient(fold_address(address))
        if folded is None:
            log.info("SMTP %r: recipient %r refused", session.peer, address)
            if fold_address(address).rpartition("@")[2] in self._our_domains:
                return "550 5.1.1 No such recipient here"
            return "550 5.7.1 Relaying denied"
        if folded not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(folded)
            envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        hops = count_received_headers(raw)
        if hops > self._max_hops:
            log.warning("SMTP %r: message refused after %d hops", session.peer, hops)
            return "554 5.4.0 Too many hops"
        try:
            contact = await self._to_contact(raw, envelope)
            result = await self._intake.submit(contact)
        except ContactRejectedError as exc:
            log.info("SMTP %r: contact rejected: %s", session.peer, exc)
            if self._quarantine is not None:
                return await self._keep(raw, session, f"rejected: {exc}")
            return f"550 5.6.0 {_reply_text(str(exc))}"
        except TemporaryIntakeError as exc:
            log.warning("SMTP %r: intake unavailable, answered 451: %s", session.peer, exc)
            return TEMPORARY_FAILURE
        except Exception as exc:
            if self._quarantine is not None:
                log.exception("SMTP %r: unexpected failure, keeping it raw", session.peer)
                return await self._keep(raw, session, f"failed: {type(exc).__name__}: {exc}")
            log.exception("SMTP %r: unexpected failure, answered 451", session.peer)
            return TEMPORARY_FAILURE
        return self._stored(raw, session, result)

    async def _keep(self, raw: bytes, session: Session, reason: str) -> str:
        """Keep what could not become a contact; 250 once it is committed, else 451."""
        assert self._quarantine is not None
        try:
            receipt = await self._quarantine.keep(raw, source="smtp", reason=reason)
        except Exception:
            log.exception("SMTP %r: quarantine unavailable, answered 451", session.peer)
            return TEMPORARY_FAILURE
        log.warning("SMTP %r: %d bytes kept as quarantine %d", session.peer, len(raw), receipt.id)
        return f"250 2.0.0 Ok: kept for review as quarantine {receipt.id}"

    def _stored(self, raw: bytes, session: Session, result: IntakeResult) -> str:
        if result.quarantine_id is not None:
            log.info(
                "SMTP %r: %d bytes kept as quarantine %d (%s)",
                session.peer,
                len(raw),
                result.quarantine_id,
                result.thread_reason,
            )
            return f"250 2.0.0 Ok: kept for review as quarantine {result.quarantine_id}"
        log.info(
            "SMTP %r: %d bytes queued as %s%s",
            session.peer,
            len(raw),
            result.ticket_ref,
            " (duplicate)" if result.duplicate else "",
        )
        return f"250 2.0.0 Ok: queued as {_reply_text(result.ticket_ref)}"

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd turns an exception escaping a hook into "500"; never let it say that.
        log.error("SMTP session error, answered 451", exc_info=error)
        return TEMPORARY_FAILURE

    async def _to_contact(self, raw: bytes, envelope: Envelope) -> Contact:
        mail_from = envelope.mail_from
        kwargs: dict[str, Any] = {
            "recipients": tuple(envelope.rcpt_tos),
            "envelope_sender": "" if mail_from in (None, "<>") else mail_from,
            "received_at": datetime.now(UTC),
            "our_addresses": self._settings.our_addresses,
            "loop_marker": self._loop_marker,
            "trusted_authserv_ids": self._channel.settings.trusted_authserv_ids,
        }
        steps = self._channel.steps

        def convert() -> Contact:
            contact = contact_from_email(raw, **kwargs)
            for step in steps:
                contact = step(contact)
            return contact

        if len(raw) > _PARSE_IN_THREAD_BYTES:
            return await asyncio.to_thread(convert)
        return convert()


def _close_transport(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class _DeskSMTP(SMTP):
    """aiosmtpd's protocol, telling the channel when its connection is gone.

    ``line_length_limit``: RFC 5321 caps lines at 1000 octets, but real mail (unwrapped HTML,
    long base64 lines from broken clients) breaks that, and Postfix and Exchange accept it.
    aiosmtpd would answer such a message with a permanent ``500 Line too long``; we accept lines
    up to 1 MiB instead. Memory stays bounded: the whole message is still capped by SIZE, and
    command lines by aiosmtpd's own command size limits.
    """

    line_length_limit = 1 << 20

    def __init__(
        self,
        handler: _DeskHandler,
        on_lost: Callable[[_DeskSMTP], None],
        in_flight: _InFlight,
        **kw: Any,
    ):
        super().__init__(handler, **kw)
        self._on_lost = on_lost
        self._in_flight = in_flight

    async def smtp_DATA(self, arg: str) -> None:
        # A message counts as in flight from the DATA command on, not only once its bytes are
        # all in: a stopping gateway lets a message that is still arriving finish and commit.
        with self._in_flight:
            await super().smtp_DATA(arg)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._on_lost(self)


class _Refusal(asyncio.Protocol):
    """Answers a connection over the cap with 421 and hangs up, without starting a session."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        log.warning(
            "SMTP connection from %r refused: too many connections",
            transport.get_extra_info("peername"),
        )
        transport.write(TOO_MANY_CONNECTIONS)
        transport.close()


class _InFlight:
    """Counts messages between their DATA command and the reply, so ``stop`` can wait."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self.idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


class SMTPChannel(Channel):
    name = "smtp"

    def __init__(
        self,
        settings: SMTPChannelSettings,
        intake: Intake,
        quarantine: Quarantine | None = None,
        steps: Sequence[ContactStep] = (),
    ) -> None:
        self.settings = settings
        self.closing = False
        self.steps = tuple(steps)  # after conversion, in order (e.g. fax-to-email)
        self._handler = _DeskHandler(self, intake, quarantine)
        self._server: asyncio.Server | None = None
        self._sessions: set[_DeskSMTP] = set()
        self._in_flight: _InFlight | None = None
        self._hostname = settings.hostname

    @property
    def port(self) -> int:
        """The bound port once started (useful with ``port = 0``), else the configured one."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self.settings.port

    def in_flight(self) -> _InFlight:
        if self._in_flight is None:
            self._in_flight = _InFlight()
        return self._in_flight

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("SMTP channel already started")
        if self._hostname is None:
            self._hostname = await asyncio.to_thread(socket.getfqdn)
        self.in_flight()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_protocol, self.settings.host, self.settings.port
        )
        log.info("SMTP listening on %s:%d", self.settings.host, self.port)

    async def stop(self, grace_seconds: float) -> None:
        server = self._server
        if server is None or self.closing:
            return
        self.closing = True
        server.close()
        in_flight = self.in_flight()
        if in_flight.count:
            log.info("SMTP stopping: waiting for %d message(s) in flight", in_flight.count)
            try:
                await asyncio.wait_for(in_flight.idle.wait(), grace_seconds)
            except TimeoutError:
                log.warning(
                    "SMTP stop: %d message(s) still in flight after %.1fs, dropping",
                    in_flight.count,
                    grace_seconds,
                )
        for session in list(self._sessions):
            transport = session.transport
            if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
                transport.write(SHUTTING_DOWN.encode("ascii") + b"\r\n")
                transport.close()
        await server.wait_closed()
        log.info("SMTP stopped")

    def _make_protocol(self) -> asyncio.BaseProtocol:
        if self.closing or len(self._sessions) >= self.settings.max_connections:
            return _Refusal()
        session = _DeskSMTP(
            self._handler,
            self._sessions.discard,
            self.in_flight(),
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self._hostname,
            ident=self.settings.ident,
            timeout=self.settings.idle_timeout_seconds,
        )
        self._sessions.add(session)
        return session
