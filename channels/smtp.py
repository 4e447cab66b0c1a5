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
    ``max_inflight_bytes`` (mail bytes all sessions may hold at once, at least
    ``max_message_bytes``; see :mod:`channels.smtp_data`),
    ``idle_timeout_seconds``, ``desk_address`` and ``aliases`` (from ``[email]``), and the
    session limits ``max_connections_per_client``, ``client_limit_exceptions``, ``max_errors``,
    ``data_timeout_seconds``
    (``channels.smtp_limits``),
    ``hostname`` and ``ident`` (the greeting), ``loop_marker`` (our ``X-Loop`` value),
    ``max_received_headers``, ``accept_abuse``, ``trusted_authserv_ids`` (from ``[email]``),
    ``reuse_port`` (bind with SO_REUSEPORT, so the workers of ``spoc serve --workers N`` share
    the port; not a config key), ``tls_cert_file`` and ``tls_key_file`` (PEM; with them
    EHLO offers STARTTLS, :mod:`channels.smtp_tls`), ``require_starttls``. The files are read
    once: ``spoc serve`` hands the channel the context its config check built
    (``tls_context``); a channel given none builds its own from the files when it starts.

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
    ``451 4.3.1 Insufficient system resources...``
                                         the ``max_inflight_bytes`` budget is spent (at DATA,
                                         or after the final dot when it ran out meanwhile)
    ``451 4.3.0 Temporary failure...``   the intake (or the quarantine) could not commit, or,
                                         without a quarantine, anything unexpected
    ``421 4.7.0 Too many connections``   more than ``max_connections`` sessions at once
    ``421 4.7.0 Too many connections from your address``
                                         more than ``max_connections_per_client`` from one
    ``421 4.7.0 Too many errors``        ``max_errors`` error replies, no message delivered
    ``421 4.4.2 Timeout exceeded``       a command slower than ``idle_timeout_seconds``, or a
                                         message slower than ``data_timeout_seconds``
    ``421 4.3.2 Service shutting down``  a new transaction while the channel stops
    ``220 Ready to start TLS``           STARTTLS, when a certificate is configured
    ``530 5.7.0 Must issue a STARTTLS command first``
                                         MAIL (or RCPT, DATA, ...) in plaintext with
                                         ``require_starttls``

Idempotency key
    The message's ``Message-ID`` (the contact's ``external_id``, chosen by the converter): a
    client that retries after a lost ``250`` gets the same ticket back, not a second one.

STARTTLS (RFC 3207) is aiosmtpd's: after the handshake it starts a new session and envelope
(the client must EHLO again) and discards whatever plaintext the client pipelined after the
STARTTLS command, so nothing injected before TLS is run inside it (CVE-2011-0411). The only
per-session state spoc keeps, the RCPT count, is keyed by the envelope and so starts afresh too.
No AUTH is offered, before or after TLS. A message that came over TLS carries the version and
cipher as ``Contact.tls`` (the router records it in the ``contact.added`` event).

DATA is read by :class:`channels.smtp_data.BudgetedDataSMTP` into one buffer, within the
``max_inflight_bytes`` budget; it ends only on ``<CRLF>.<CRLF>`` (CRLF-terminated lines, as
aiosmtpd reads them), so bare-LF "SMTP smuggling" payloads stay inside the message that carried
them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import string
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from channels.base import Channel
from channels.inflight_budget import InflightBudget
from channels.mail_conversion import ConversionPool
from channels.networks import ip_networks
from channels.smtp_address import AddressSMTP
from channels.smtp_data import BudgetedDataSMTP
from channels.smtp_limits import ClientCounts, LimitedSMTP
from channels.smtp_tls import server_tls_context
from normalizer.contact import Contact, ContactStep, off_loop
from normalizer.email import contact_from_email, parse_if_cheap
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
MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
_AIOSMTPD_MUST_STARTTLS = "530 Must issue a STARTTLS command first"
_NO_AUTH_MECHANISMS = "250-AUTH "  # what aiosmtpd's EHLO says after STARTTLS with none left

# Convert costly mail off the loop so one big HTML mail does not stall every other session.
# What costs is the text walked in Python (normalizer.email.parse_if_cheap): sanitising and
# converting a 250 KB HTML body takes 40-70 ms here (bench/loop_lag.py), ~8 ms per 32 KiB. A
# mail with at most 32 KiB of it is converted on the loop, cheaper than any hop, if it is at
# most 512 KiB in all: its base64 attachments are decoded and hashed in C, ~1 ms per 100 KB.
# Other mail up to 4 MiB is converted in another process (channels.mail_conversion): on a
# thread it would still hold the GIL, and so the loop, for long stretches. Above it a message is
# mostly attachments, whose decoding is C work in big steps; sending it to a process would only
# copy it once more (issue 12 bounds a big message's memory), so it stays on a thread.
_CONVERT_ON_LOOP_TEXT_BYTES = 32 * 1024
_CONVERT_ON_LOOP_MAX_BYTES = 512 * 1024
_PARSE_IN_PROCESS_MAX_BYTES = 4 * 1024 * 1024
_CONVERSION_PROCESSES = 2  # per SMTP channel (so per serve worker); 2 cores on the target box
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_FIELD_NAME_END = re.compile(rb"[ \t]*:")
_UNSAFE_REPLY = re.compile(r"[^\x20-\x7e]+")


def fold_address(address: str) -> str:
    """Lower-case ASCII letters only: long s (U+017F) or Kelvin (U+212A) never fold into ours."""
    return address.translate(_ASCII_LOWER)


def count_received_headers(raw: bytes) -> int:
    """How many ``Received`` header fields the message's header block holds: lines starting
    ``received`` (any case) and a colon, maybe after spaces, up to the first empty line (LF or
    CRLF line ends). With ``bytes.find`` rather than one regular expression: a regex with
    ``^`` under MULTILINE, and one for the empty line, try a match at every byte (~20 us per
    4 KB mail, against ~2 us; the same count, ``tests/unit/channels/test_smtp.py``)."""
    end = raw.find(b"\n\r\n")
    # An LF-only empty line before it, if any (searched only that far: bytes.find is slow
    # to learn that a CRLF message holds no "\n\n", ~10 us per 4 KB).
    lf_end = raw.find(b"\n\n", 0, len(raw) if end < 0 else end + 1)
    end = lf_end if lf_end >= 0 else end
    lines = b"\n" + (raw if end < 0 else raw[:end]).lower()  # each line after a "\n"
    count = 0
    at = lines.find(b"\nreceived")
    while at >= 0:
        count += _FIELD_NAME_END.match(lines, at + 9) is not None
        at = lines.find(b"\nreceived", at + 9)
    return count


def session_tls(session: Session) -> str | None:
    """The TLS version and cipher of the session (``TLSv1.3 TLS_AES_256_GCM_SHA384``) after
    STARTTLS, else None: the contact's ``tls``."""
    cipher = (session.ssl or {}).get("cipher")
    return f"{cipher[1]} {cipher[0]}" if cipher else None


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
    max_recipients: int = 1000  # Postfix's smtpd_recipient_limit; RFC 5321 asks for >= 100
    max_connections: int = 200
    max_connections_per_client: int = 50  # Postfix's smtpd_client_connection_count_limit
    client_limit_exceptions: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # not counted there
    max_errors: int = 20  # Postfix's smtpd_hard_error_limit
    max_inflight_bytes: int = 104_857_600  # mail bytes held at once, all sessions (4 x 25 MiB)
    idle_timeout_seconds: float = 300.0  # per command (aiosmtpd restarts it on each command)
    data_timeout_seconds: float = 600.0  # the whole message, from DATA to our reply
    hostname: str | None = None  # the greeting's name; None: this host's FQDN
    ident: str = "spoc ESMTP"
    loop_marker: str | None = None  # our X-Loop value; None: the desk address
    max_received_headers: int = 30
    accept_abuse: bool = False  # also take abuse@ at our domains (postmaster@ always)
    trusted_authserv_ids: tuple[str, ...] = ()  # [email]: the MX whose Authentication-Results count
    reuse_port: bool = False  # SO_REUSEPORT: processes share the port (spoc serve --workers)
    tls_cert_file: str | None = None  # PEM certificate chain: STARTTLS is offered with it
    tls_key_file: str | None = None  # its PEM private key (both or neither)
    require_starttls: bool = False  # refuse MAIL (530) until the client has done STARTTLS
    # Folded once here (RCPT asks for them on every command): see ``our_addresses``.
    _our_addresses: frozenset[str] = field(init=False, repr=False, compare=False)
    _our_domains: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ours = frozenset(fold_address(a) for a in (self.desk_address, *self.aliases))
        object.__setattr__(self, "_our_addresses", ours)
        object.__setattr__(self, "_our_domains", frozenset(a.rpartition("@")[2] for a in ours))
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            given, missing = (
                ("tls_cert_file", "tls_key_file")
                if self.tls_key_file is None
                else ("tls_key_file", "tls_cert_file")
            )
            raise ValueError(f"smtp.{missing}: needed too, since smtp.{given} is set")
        if self.require_starttls and self.tls_cert_file is None:
            raise ValueError(
                "smtp.require_starttls: needs smtp.tls_cert_file and smtp.tls_key_file "
                "(STARTTLS cannot be required when it is not offered)"
            )
        for key in (
            "max_message_bytes",
            "max_recipients",
            "max_connections",
            "max_connections_per_client",
            "max_errors",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"smtp.{key} must be at least 1, got {getattr(self, key)!r}")
        if self.max_inflight_bytes < self.max_message_bytes:
            raise ValueError(
                f"smtp.max_inflight_bytes must be at least smtp.max_message_bytes "
                f"({self.max_message_bytes}), got {self.max_inflight_bytes!r}"
            )
        try:
            ip_networks(self.client_limit_exceptions)
        except ValueError as exc:
            raise ValueError(f"smtp.client_limit_exceptions: {exc}") from None
        for key in ("idle_timeout_seconds", "data_timeout_seconds"):
            if getattr(self, key) <= 0:
                raise ValueError(f"smtp.{key} must be positive, got {getattr(self, key)!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"smtp.port must be 0..65535, got {self.port!r}")

    @property
    def our_addresses(self) -> frozenset[str]:
        """The desk address and its aliases, ASCII-lower-cased."""
        return self._our_addresses

    @property
    def our_domains(self) -> frozenset[str]:
        return self._our_domains

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
        lowered = fold_address(address)
        folded = self._settings.accepted_recipient(lowered)
        if folded is None:
            log.info("SMTP %r: recipient %r refused", session.peer, address)
            if lowered.rpartition("@")[2] in self._our_domains:
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
        tls = session_tls(session)
        try:
            contact = await self._to_contact(raw, envelope, tls)
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
        return self._stored(raw, session, result, tls)

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

    def _stored(self, raw: bytes, session: Session, result: IntakeResult, tls: str | None) -> str:
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
            "SMTP %r: %d bytes queued as %s%s over %s",
            session.peer,
            len(raw),
            result.ticket_ref,
            " (duplicate)" if result.duplicate else "",
            tls or "plaintext",
        )
        return f"250 2.0.0 Ok: queued as {_reply_text(result.ticket_ref)}"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # aiosmtpd hangs up; a client's problem
            log.info("SMTP STARTTLS handshake failed: %s", error.__cause__ or error)
            return TEMPORARY_FAILURE
        # aiosmtpd turns an exception escaping a hook into "500"; never let it say that.
        log.error("SMTP session error, answered 451", exc_info=error)
        return TEMPORARY_FAILURE

    async def _to_contact(self, raw: bytes, envelope: Envelope, tls: str | None) -> Contact:
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

        def finish(contact: Contact) -> Contact:
            for step in steps:
                contact = step(contact)
            contact = contact.without_located_bytes()  # stored once: inside the raw message
            return replace(contact, tls=tls) if tls else contact

        if len(raw) <= _CONVERT_ON_LOOP_MAX_BYTES:
            parsed = parse_if_cheap(raw, _CONVERT_ON_LOOP_TEXT_BYTES)
            if parsed is not None:
                contact = contact_from_email(parsed, **kwargs)
                if self._channel.steps_off_loop:  # e.g. a fax's pages counted by pypdf
                    return await asyncio.to_thread(finish, contact)
                return finish(contact)
        if len(raw) <= _PARSE_IN_PROCESS_MAX_BYTES:
            # The steps (fax, forwarded mail, attachment limit) may hold callables that do not
            # pickle; they are cheap next to the conversion and run on a thread here.
            contact = await self._channel.conversions.convert(raw, **kwargs)
            return await asyncio.to_thread(finish, contact)
        return await asyncio.to_thread(lambda: finish(contact_from_email(raw, **kwargs)))


def _close_transport(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class _DeskSMTP(LimitedSMTP, BudgetedDataSMTP, AddressSMTP):
    """aiosmtpd's protocol with spoc's session limits (:mod:`channels.smtp_limits`) and DATA
    read within the in-flight budget (:mod:`channels.smtp_data`), plain MAIL/RCPT addresses
    read without the header parser (:mod:`channels.smtp_address`), telling the channel when its
    connection is gone.

    ``text_line_limit``: RFC 5321 caps lines at 1000 octets, but real mail (unwrapped HTML,
    long base64 lines from broken clients) breaks that, and Postfix and Exchange accept it.
    aiosmtpd would answer such a message with a permanent ``500 Line too long``; we accept lines
    up to 1 MiB instead. Memory stays bounded: the whole message is still capped by SIZE, and
    command lines by aiosmtpd's own command size limits (512 octets, RFC 5321 4.5.3.1.4).
    Connections per client, errors, the DATA deadline: ``channels.smtp_limits``.
    """

    text_line_limit = 1 << 20

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd's own replies, as an MX should give them: the enhanced status code on the
        # STARTTLS refusal, and no empty "AUTH" line after STARTTLS (a desk MX offers no AUTH).
        if status == _AIOSMTPD_MUST_STARTTLS:
            await super().push(MUST_STARTTLS)
        elif status != _NO_AUTH_MECHANISMS:
            await super().push(status)

    def __init__(
        self,
        handler: _DeskHandler,
        on_lost: Callable[[_DeskSMTP], None],
        in_flight: _InFlight,
        budget: InflightBudget,
        **kw: Any,
    ):
        super().__init__(handler, budget=budget, **kw)
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
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.closing = False
        self.steps = tuple(steps)  # after conversion, in order (e.g. fax-to-email)
        self.steps_off_loop = off_loop(self.steps)
        self._handler = _DeskHandler(self, intake, quarantine)
        self._server: asyncio.Server | None = None
        self._sessions: set[_DeskSMTP] = set()
        self._clients = ClientCounts(
            settings.max_connections_per_client, settings.client_limit_exceptions
        )
        self._in_flight: _InFlight | None = None
        self.budget = InflightBudget(settings.max_inflight_bytes)
        self.conversions = ConversionPool(_CONVERSION_PROCESSES)  # started and stopped with us
        self._hostname = settings.hostname
        # Already built from settings' files (``Config.smtp_tls_context``), or built at start.
        self._tls_context = tls_context

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
        cert_file, key_file = self.settings.tls_cert_file, self.settings.tls_key_file
        if self._tls_context is None and cert_file is not None and key_file is not None:
            # Read once: a renewed certificate takes effect on the next restart.
            self._tls_context = await asyncio.to_thread(server_tls_context, cert_file, key_file)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_protocol,
            self.settings.host,
            self.settings.port,
            reuse_port=self.settings.reuse_port or None,
        )
        self.conversions.start()  # here: in each serve worker, after the fork
        log.info(
            "SMTP listening on %s:%d (STARTTLS %s)",
            self.settings.host,
            self.port,
            "required"
            if self.settings.require_starttls
            else "offered"
            if self._tls_context
            else "not offered",
        )

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
        await self.conversions.stop()
        log.info("SMTP stopped")

    def _make_protocol(self) -> asyncio.BaseProtocol:
        if self.closing or len(self._sessions) >= self.settings.max_connections:
            return _Refusal()
        session = _DeskSMTP(
            self._handler,
            self._sessions.discard,
            self.in_flight(),
            self.budget,
            clients=self._clients,
            max_errors=self.settings.max_errors,
            data_timeout_seconds=self.settings.data_timeout_seconds,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self._hostname,
            ident=self.settings.ident,
            timeout=self.settings.idle_timeout_seconds,
            tls_context=self._tls_context,
            require_starttls=self.settings.require_starttls,
            auth_exclude_mechanism=("LOGIN", "PLAIN"),  # never AUTH: an MX relays for nobody
        )
        self._sessions.add(session)
        return session
