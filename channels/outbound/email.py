"""Outbound email: acknowledgements and agent replies over the ``[outbound_smtp]`` relay.

What it does
    Builds one RFC 5322 ``text/plain`` message per outbox payload (kinds ``email.ack`` and
    ``email.reply``, shape in docs/architecture.md), worded by :mod:`channels.outbound.email_text`
    from the payload's event, and hands it to the relay with aiosmtplib on a session kept open
    for the next message (:mod:`channels.outbound.smtp_sessions`; :meth:`EmailSender.close`
    sends QUIT).
    Every message carries ``X-Loop: <desk address>`` and ``X-Auto-Response-Suppress: All``;
    acks also ``Auto-Submitted: auto-replied`` (RFC 3834). Replies thread to the requester's
    message with ``In-Reply-To`` and ``References``. The envelope sender is the desk address
    (RFC 3834 allows it, and a null sender is often filtered).

Config keys (:class:`OutboundSMTPSettings`)
    ``host``, ``port``, ``tls`` (implicit TLS), ``starttls``, ``username``, ``password``,
    ``timeout_seconds``, ``loop_marker`` (defaults to the payload's ``from_address``),
    ``helo_hostname``, ``validate_certs``; and ``[email] single_address_notice`` for the wording
    (:class:`channels.outbound.email_text.EmailWording`).

Results
    :meth:`EmailSender.send` returns the relay's final reply text. It raises
    :class:`channels.outbound.DeliveryError` with ``permanent=True`` for a 5xx answer or a
    malformed payload, ``permanent=False`` for a 4xx, a refused or dropped connection, a
    timeout or an authentication failure (an operator can fix the credentials; the queued
    mail should not die meanwhile).

Idempotency key
    The payload's ``message_id`` becomes the ``Message-ID``: a retry after an unclear failure
    sends the same id, which receiving systems and the desk's own threading recognise.
"""

from __future__ import annotations

import email.errors
import email.policy
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

import aiosmtplib

from channels.outbound import DeliveryError
from channels.outbound.email_text import EmailWording, mail_text
from channels.outbound.events import UnknownEventError
from channels.outbound.smtp_sessions import RelaySession, RelaySessions, SessionLimits
from normalizer.addresses import is_email_address

log = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s+")
# ``local@domain``, both dot-atoms of plain characters (the usual address): ``Address`` reads it
# back as it is (``test_outbound_message.py``), so the header parser (~0.1 ms, four times per
# mail) is skipped for it.
_DOT_ATOMS = re.compile(
    r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


@dataclass(frozen=True, slots=True)
class OutboundSMTPSettings:
    host: str = "127.0.0.1"
    port: int = 2526
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_seconds: float = 30.0
    loop_marker: str | None = None  # X-Loop value; None: the payload's from_address
    helo_hostname: str | None = None  # None: this host's FQDN
    validate_certs: bool = True

    def __post_init__(self) -> None:
        if self.tls and self.starttls:
            raise ValueError("outbound_smtp: choose tls (implicit) or starttls, not both")
        if self.timeout_seconds <= 0:
            raise ValueError(
                f"outbound_smtp.timeout_seconds must be positive, got {self.timeout_seconds!r}"
            )


def _one_line(value: str) -> str:
    """Header text on one line: CR, LF and runs of whitespace become one space."""
    return _WHITESPACE.sub(" ", value).strip()


def _bare_id(value: str) -> str:
    return value.strip().strip("<>").strip()


def _field(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise DeliveryError(
            f"outbound email payload: {key!r} must be a non-empty string", permanent=True
        )
    return value


def _address(payload: Mapping[str, Any], key: str) -> str:
    """A bare addr-spec. Non-ASCII local parts (RFC 6531) are allowed; aiosmtplib then asks
    the relay for SMTPUTF8."""
    value = _field(payload, key).strip()
    if not is_email_address(value):
        raise DeliveryError(f"outbound email payload: {key!r} is not an address", permanent=True)
    if _DOT_ATOMS.fullmatch(value):  # what the parser gives back unchanged, without parsing
        return value
    if value.isascii():
        try:
            return Address(addr_spec=value).addr_spec
        except (ValueError, IndexError, email.errors.MessageError) as exc:
            raise DeliveryError(
                f"outbound email payload: {key!r} is not an address", permanent=True
            ) from exc
    return value


def _references(payload: Mapping[str, Any]) -> list[str]:
    refs = payload.get("references") or []
    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise DeliveryError("outbound email payload: 'references' must be a list", permanent=True)
    return [bare for ref in refs if isinstance(ref, str) and (bare := _bare_id(ref))]


class _HeaderClasses(HeaderRegistry):
    """The email package's header factory, making each field's header class once.

    ``HeaderRegistry`` builds a new class (``type(...)``) for every header it creates, about a
    tenth of an acknowledgement's construction on the event loop. The class depends only on the
    field name (lower-cased) and the names are ours (``build_message``), so one class per name
    is kept; the headers, and the bytes sent, are the same (``test_outbound_message.py``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


_POLICY = email.policy.SMTP.clone(header_factory=_HeaderClasses())


@lru_cache(maxsize=64)
def _same_header(name: str, value: str) -> BaseHeader:
    """The header ``msg[name] = value`` makes, made once for the values every mail repeats
    (X-Loop, Auto-Submitted, X-Auto-Response-Suppress, and the desk's From): a header is an
    immutable ``str`` with its parse tree, and ``msg[name] = header`` stores it as it is. The
    bytes sent are the same (``test_outbound_message.py``)."""
    header: BaseHeader = _POLICY.header_factory(name, value)
    return header


@lru_cache(maxsize=64)
def _from_header(display_name: str, addr_spec: str) -> BaseHeader:
    """:func:`_same_header` for ``From``, made from an ``Address`` (which quotes and encodes
    the display name as it needs)."""
    address = Address(display_name=display_name, addr_spec=addr_spec)
    header: BaseHeader = _POLICY.header_factory("From", address)
    return header


def build_message(
    payload: Mapping[str, Any],
    *,
    loop_marker: str | None = None,
    wording: EmailWording | None = None,
) -> EmailMessage:
    """The MIME message for one outbox payload. Raises a permanent DeliveryError if malformed."""
    to = _address(payload, "to")
    from_address = _address(payload, "from_address")
    message_id = _bare_id(_field(payload, "message_id"))
    if not message_id or _WHITESPACE.search(message_id):
        raise DeliveryError(
            "outbound email payload: 'message_id' is not a message id", permanent=True
        )
    in_reply_to = _bare_id(_field(payload, "in_reply_to", required=False))
    references = _references(payload)
    auto_submitted = payload.get("auto_submitted")
    try:
        words = mail_text(payload, wording or EmailWording())
    except UnknownEventError as exc:
        raise DeliveryError(f"outbound email payload: {exc}", permanent=True) from exc

    msg = EmailMessage(policy=_POLICY)
    try:
        msg["From"] = _from_header(
            _one_line(_field(payload, "from_name", required=False)), from_address
        )
        msg["To"] = to
        msg["Subject"] = _one_line(words.subject)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<{message_id}>"
        if in_reply_to:
            msg["In-Reply-To"] = f"<{in_reply_to}>"
        if references or in_reply_to:
            chain = (
                references
                if in_reply_to in references or not in_reply_to
                else [
                    *references,
                    in_reply_to,
                ]
            )
            msg["References"] = " ".join(f"<{ref}>" for ref in chain)
        if auto_submitted:
            msg["Auto-Submitted"] = _same_header("Auto-Submitted", _one_line(str(auto_submitted)))
        msg["X-Auto-Response-Suppress"] = _same_header("X-Auto-Response-Suppress", "All")
        msg["X-Loop"] = _same_header("X-Loop", _one_line(loop_marker or from_address))
        text = words.text
        msg.set_content(text, charset="utf-8", cte=None if text.isascii() else "quoted-printable")
    except (ValueError, TypeError, email.errors.MessageError) as exc:
        raise DeliveryError(
            f"outbound email payload: cannot build message: {exc}", permanent=True
        ) from exc
    return msg


class EmailSender:
    """Delivers ``email.*`` outbox payloads through the configured relay, reusing its sessions
    (:mod:`channels.outbound.smtp_sessions`)."""

    def __init__(
        self,
        settings: OutboundSMTPSettings,
        wording: EmailWording | None = None,
        limits: SessionLimits | None = None,
    ) -> None:
        self.settings = settings
        self.wording = wording or EmailWording()
        self.sessions = RelaySessions(self._session, limits or SessionLimits())

    def _session(self) -> RelaySession:
        settings = self.settings
        return RelaySession(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            local_hostname=settings.helo_hostname,
            timeout=settings.timeout_seconds,
            use_tls=settings.tls,
            start_tls=settings.starttls,
            validate_certs=settings.validate_certs,
        )

    async def close(self) -> None:
        """QUIT the relay sessions kept open (the gateway's shutdown)."""
        await self.sessions.close()

    async def send(self, payload: Mapping[str, Any], *, idempotency_key: str | None = None) -> str:
        """``idempotency_key`` is accepted for the dispatcher's contract; mail has its own,
        the ``Message-ID``, which is the same on every retry."""
        msg = build_message(payload, loop_marker=self.settings.loop_marker, wording=self.wording)
        sender = _address(payload, "from_address")
        recipient = _address(payload, "to")
        reply = await self.deliver(msg, sender, recipient)
        log.info(
            "email %s delivered to relay for %s",
            msg["Message-ID"],
            payload.get("ticket_ref") or "-",
        )
        return reply

    async def deliver(self, msg: EmailMessage, sender: str, recipient: str) -> str:
        """Hand one built message to the relay; the relay's reply, or DeliveryError."""
        try:
            _, reply = await self.sessions.run(
                lambda session: session.send_message(msg, sender=sender, recipients=[recipient])
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            permanent = bool(codes) and all(500 <= code < 600 for code in codes)
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryError(f"recipient refused: {detail}", permanent=permanent) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"relay authentication failed: {exc.code}", permanent=False
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"relay answered {exc.code} {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"relay unreachable: {type(exc).__name__}: {exc}", permanent=False
            ) from exc
        return reply
