"""The one shape every channel's input takes: a :class:`Contact`.

A channel adapter (``channels/``) turns what arrived -- an SMTP transaction, a Twilio form, a
Slack event, an API body -- into a ``Contact`` with a pure converter from this package. Nothing
raw from aiosmtpd, Twilio or Slack travels past ``channels/``: the router only ever sees these
frozen dataclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime


class Channel(enum.StrEnum):
    """Where a contact came in. The values are the contract's ``channel`` strings."""

    EMAIL = "email"
    FAX = "fax"
    PHONE = "phone"
    SMS = "sms"
    SLACK = "slack"
    API = "api"
    WEB = "web"  # the end-user form at /report


class AutoClass(enum.StrEnum):
    """What kind of machine (if any) wrote a message; anything but HUMAN is never acknowledged."""

    HUMAN = "human"
    AUTO_REPLY = "auto_reply"  # RFC 3834 Auto-Submitted, vacation notices, X-Autoreply
    BOUNCE = "bounce"  # DSN (RFC 3464), null sender, mailer-daemon
    MDN = "mdn"  # read receipts (RFC 8098)
    FEEDBACK = "feedback"  # ARF abuse/feedback reports (RFC 5965)
    LIST = "list"  # List-Id / List-Unsubscribe / Precedence: list
    BULK = "bulk"  # Precedence: bulk/junk, marketing senders
    LOOP = "loop"  # carries our own X-Loop: we wrote it


class Kind(enum.StrEnum):
    INCIDENT = "incident"
    SERVICE_REQUEST = "service_request"


@dataclass(frozen=True, slots=True)
class Party:
    """Who sent a contact, as far as the channel knows.

    ``email`` is case-folded, ``phone`` is E.164 (``+15550100``), ``slack_user_id`` is Slack's
    ``U…`` id. ``sender_id`` is a caller id that is no phone number -- a short code, an
    alphanumeric SMS sender, ``client:alice``, ``sip:bob@pbx`` -- kept as sent: shown and
    searchable, never linked to anybody's phone or email. Any of them may be missing; a contact
    needs at least one to have a requester.
    """

    email: str | None = None
    phone: str | None = None
    slack_user_id: str | None = None
    name: str | None = None
    sender_id: str | None = None

    @property
    def address(self) -> str | None:
        """The identifier a human would recognise first: email, phone, Slack id, sender id."""
        return self.email or self.phone or self.slack_user_id or self.sender_id

    def is_empty(self) -> bool:
        return self.address is None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a contact. ``filename`` is already safe to show and to store.

    ``content_id`` is a MIME part's Content-ID (bare), which HTML bodies refer to as ``cid:``.
    An attachment kept as metadata only (over the size limit) has no ``data``, its
    ``original_size`` and ``sha256`` as it arrived, and ``omitted`` saying why: its bytes
    stay in the contact's raw message. ``part`` locates an email attachment in the contact's
    raw message (``"1"``, ``"1.0.2"``: the indexes of sub-parts from the top), so its bytes
    are stored once, there, and decoded when served (:func:`normalizer.email.attachment_bytes`).
    """

    filename: str
    content_type: str
    sha256: str
    data: bytes = field(repr=False)
    content_id: str | None = None
    omitted: str | None = None
    original_size: int | None = None
    part: str | None = None  # where its bytes are in the contact's raw message (MIME part path)

    @property
    def size(self) -> int:
        return self.original_size if self.original_size is not None else len(self.data)

    def without_data(self, reason: str) -> Attachment:
        """This attachment as metadata only: same name, type, size and sha256, no bytes."""
        return replace(self, data=b"", omitted=reason, original_size=self.size)

    def located_only(self) -> Attachment:
        """This attachment without its decoded bytes when ``part`` says where they are in the
        raw message (they are read from there when asked for); else itself."""
        if self.part is None or not self.data:
            return self
        return replace(self, data=b"", original_size=self.size)


@dataclass(frozen=True, slots=True)
class ThreadHints:
    """Everything a channel knows about which conversation a contact continues.

    ``message_id`` and the reference lists hold bare ids without angle brackets. ``subject_refs``
    are ticket refs found in ``[XX-n]`` subject tags (the router checks the prefix and whether
    the sender may use them). ``chat_thread`` is a Slack ``channel:thread_ts`` or an SMS
    conversation ``sms:+15550100``; ``call_id`` a Twilio CallSid.
    """

    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    subject_refs: tuple[str, ...] = ()
    chat_thread: str | None = None
    call_id: str | None = None
    # A chat thread normally continues its ticket for good. With a window (SMS: one phone
    # number is one endless "thread") it continues only a ticket that is still open and was
    # active within that many seconds; otherwise the contact opens a new ticket.
    chat_window_seconds: float | None = None

    def referenced_ids(self) -> tuple[str, ...]:
        """In-Reply-To first, then References newest first, without repeats."""
        seen: dict[str, None] = {}
        for mid in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(mid, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class Report:
    """What an automatic mail (a bounce, a read receipt, an auto-reply) says about the message
    it answers, read from the returned message or headers it carries.

    ``original_ids`` are the Message-IDs of the returned message(s), bare; ``original_senders``
    their From addresses and ``original_subject_refs`` the ``[SD-n]`` tags of their subjects;
    ``failed_recipients`` the addresses a delivery-status report or ``X-Failed-Recipients``
    names; ``delivery_failed`` is False for a report that says only "delayed" or "delivered",
    True when it says "failed", None when no report says.
    """

    original_ids: tuple[str, ...] = ()
    original_senders: tuple[str, ...] = ()
    original_subject_refs: tuple[str, ...] = ()
    failed_recipients: tuple[str, ...] = ()
    delivery_failed: bool | None = None


@dataclass(frozen=True, slots=True)
class Hints:
    """What the channel already knows about triage (an IVR choice, a Slack modal field)."""

    category: str | None = None
    kind: Kind | None = None
    urgency: str | None = None  # "high" | "medium" | "low"


MESSAGE_TYPE = "message/rfc822"  # the raw_type of a contact whose raw bytes are a mail


@dataclass(frozen=True, slots=True)
class Contact:
    """One thing a person (or a machine) sent to the desk, on any channel.

    ``external_id`` is the channel's idempotency key: the Message-ID for email, the CallSid+step
    for a call, the event id for Slack, the caller's ``external_id`` for the API. The router
    stores each ``(channel, external_id)`` once; a repeat is a duplicate.

    ``recipients`` are the envelope recipients that the desk accepted (our address or an alias);
    ``visible_recipients`` are the To/Cc addresses as written, so the router can tell a mail
    that was only Bcc'd to us and learn who else is on the conversation.
    """

    channel: Channel
    external_id: str
    sender: Party
    received_at: datetime
    subject: str = ""
    text: str = ""
    recipients: tuple[str, ...] = ()
    visible_recipients: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    thread: ThreadHints = field(default_factory=ThreadHints)
    hints: Hints = field(default_factory=Hints)
    auto: AutoClass = AutoClass.HUMAN
    envelope_sender: str | None = None  # SMTP MAIL FROM; "" is the null sender
    raw: bytes = field(default=b"", repr=False)
    raw_type: str = "application/octet-stream"  # message/rfc822, application/json, …
    forwarded_by: str | None = None  # the desk agent who forwarded the sender's message in
    # What the converter had to work around (MIME defects, an unreadable part): the contact is
    # kept as well as it could be read, its raw bytes whole, and the desk can see why.
    problems: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()  # the Reply-To addresses, case-folded
    # The trusted MX's Authentication-Results verdict on the sender: True passed DMARC (or an
    # aligned SPF/DKIM), False did not, None not judged (no trusted authserv-id configured).
    authenticated: bool | None = None
    # SMTP only: the TLS version and cipher the message arrived over after STARTTLS
    # ("TLSv1.3 TLS_AES_256_GCM_SHA384"); None: plaintext, or another channel.
    tls: str | None = None
    report: Report = field(default_factory=Report)  # only read for automatic mail

    @property
    def is_automatic(self) -> bool:
        return self.auto is not AutoClass.HUMAN

    def keeps_in_raw(self, attachment: Attachment) -> bool:
        """Whether ``attachment``'s bytes are stored inside this contact's raw message (it has
        a ``part`` there), so they need no copy of their own."""
        return attachment.part is not None and bool(self.raw) and self.raw_type == MESSAGE_TYPE

    def without_located_bytes(self) -> Contact:
        """This contact without the decoded bytes of attachments its raw message holds: they
        are stored once, in the raw message, and need not stay in memory until the commit."""
        if not any(self.keeps_in_raw(a) and a.data for a in self.attachments):
            return self
        return replace(
            self,
            attachments=tuple(
                a.located_only() if self.keeps_in_raw(a) else a for a in self.attachments
            ),
        )


# A pipeline step after a converter: takes a contact and gives it back, changed or not
# (fax-to-email is email plus a FaxStep). Pure; it runs where the converter runs, except that a
# step which may take long (it reads a file: a fax's PDF pages, an attached message) says so
# with a true ``off_loop`` attribute, and the SMTP channel then runs the steps on a thread when
# it converted the mail on its event loop (see :func:`off_loop`).
ContactStep = Callable[[Contact], Contact]


def off_loop(steps: Iterable[ContactStep]) -> bool:
    """Whether any of ``steps`` may take long enough to stall an event loop."""
    return any(getattr(step, "off_loop", False) for step in steps)
