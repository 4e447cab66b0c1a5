"""Forward kind ``email``: the requester's message handed to a helpdesk that takes mail.

What it does
    Each ``ticket.created`` and ``contact.added`` sends the contact to the target's ``to``
    through ``[outbound_smtp]``: the subject tagged with our ref once (``[SD-42] Printer on
    fire``; a subject that carries the tag already keeps it), a short header naming the
    requester and channel, the contact's text, and -- for a contact that came by mail -- the
    original message with its attachments as a ``message/rfc822`` part. Escalations and
    status changes send a one-line note. ``Reply-To`` is the desk, and the target's address
    is a participant of the ticket (the router adds it), so the tool's replies, tagged
    ``[SD-42]``, thread back onto the ticket; they are not forwarded to the tool again.

Config keys (``[[forward]]`` with ``kind = "email"``)
    ``name``, ``to``, ``when``; the relay from ``[outbound_smtp]``, the sender from
    ``[email]``.

Idempotency key
    The ``Message-ID`` is made from the outbox row's key (``spoc.fwd.<hash>@<domain>``): every
    retry of one event sends the same id.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from channels.outbound import DeliveryError
from channels.outbound.email import EmailSender
from channels.outbound.email_text import tagged_subject
from channels.outbound.forward import ForwardJob, ForwardResult, object_at, update_text
from normalizer.hooks import HookEvent, HookRefused
from normalizer.outbox_events import CONTACT_ADDED, TICKET_CREATED

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmailForwardSettings:
    name: str
    to: str
    desk_address: str
    from_name: str
    message_id_domain: str


class EmailForwarder:
    needs_original = True  # the gateway hands it the contact's raw message

    def __init__(self, settings: EmailForwardSettings, sender: EmailSender) -> None:
        self.settings = settings
        self._sender = sender

    def message(self, job: ForwardJob) -> EmailMessage:
        settings, ticket = self.settings, job.ticket
        ref = str(ticket.get("ref"))
        requester = object_at(ticket.get("requester"))
        who = requester.get("email") or requester.get("phone") or requester.get("slack_user_id")
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = Address(display_name=settings.from_name, addr_spec=settings.desk_address)
        msg["To"] = settings.to
        msg["Reply-To"] = settings.desk_address
        subject = " ".join(str(ticket.get("subject") or "(no subject)").split())
        msg["Subject"] = tagged_subject(ref, subject)[:998]
        msg["Date"] = format_datetime(datetime.now(UTC))
        digest = hashlib.sha256(job.idempotency_key.encode()).hexdigest()[:24]
        msg["Message-ID"] = f"<spoc.fwd.{digest}@{settings.message_id_domain}>"
        msg["X-Loop"] = settings.desk_address
        msg["X-Spoc-Ticket"] = ref
        if job.event in (TICKET_CREATED, CONTACT_ADDED) and job.contact is not None:
            head = (
                f"{ref} from {requester.get('name') or ''} <{who or '?'}> "
                f"by {job.contact.get('channel')}, priority {ticket.get('priority')}.\n"
                f"Reply to this mail keeping [{ref}] in the subject; the desk sees it.\n\n"
            )
            body = head + str(job.contact.get("text") or "")
        else:
            body = update_text(job)
        msg.set_content(body, charset="utf-8", cte="quoted-printable")
        if (
            job.original
            and job.contact is not None
            and job.contact.get("channel")
            in (
                "email",
                "fax",
            )
        ):
            original = message_from_bytes(job.original, policy=policy.default)
            msg.add_attachment(original)  # message/rfc822: the mail with its attachments
        return msg

    async def forward(self, job: ForwardJob) -> ForwardResult:
        try:
            msg = self.message(job)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(
                f"email forward: cannot build the message: {exc}", permanent=True
            ) from exc
        await self._sender.deliver(msg, self.settings.desk_address, self.settings.to)
        return ForwardResult(job.external_key or str(msg["Message-ID"]).strip("<>"), None)

    async def read_hook(self, headers: Mapping[str, str], raw: bytes) -> list[HookEvent]:
        raise HookRefused("an email target answers by mail, tagged with the ref, not by hook")
