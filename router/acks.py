"""When does a requester get an acknowledgement, and with what facts?

Only a human's email that opened a ticket, written to our address (not Bcc'd), from a real
person's address, gets one -- never auto-replies, bounces, lists, bulk mail, the null sender,
role or no-reply addresses, or our own addresses. At most one per (sender, ticket), at most
``per_sender_per_hour`` per sender and ``global_per_minute`` in all, counted from the outbox.
The ack is written to the outbox in the routing transaction as an ``ack`` event (the ref, the
subject, the requester's name, whether to tell them about the one address); the dispatcher
sends it later, and ``channels.outbound`` words it for its transport. On PostgreSQL the
per-sender count is taken under an advisory lock on the recipient, held to COMMIT, so gateways
sharing the database count each other's acks (``router.thread_lock``).

A Slack message, shortcut or modal that opened a ticket gets a ``slack.ack`` in its thread (or
the user's DM for a modal) naming the ref -- when the Slack transport runs, never for an
automatic contact, at most ``per_sender_per_hour`` per Slack user (no global limit).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer import outbox_events
from normalizer.autoclass import is_role_address
from normalizer.contact import Channel, Contact
from router import prepared
from router.legacy import SINGLE_ADDRESS, legacy_address, owes_single_address_notice, record_notice
from router.outbox import enqueue
from router.schema import outbox
from router.settings import RouterSettings
from router.system_mail import is_undeliverable
from router.thread_lock import lock_names

ACK = "email.ack"
# Mail to these reports a problem with mail itself (RFC 5321 section 4.5.1, RFC 2142): often a
# bounce or a report, and answering it automatically invites loops. The desk reads it.
_MAIL_SYSTEM_MAILBOXES = frozenset({"postmaster", "abuse"})
SLACK_ACK = "slack.ack"
# Channels whose requester is acknowledged by email under the rules below: a web form's user
# (an API contact with from.email) expects the mail a sender gets. An API contact has no
# recipients, so the Bcc rule is for email only.
ACKED_BY_EMAIL = (Channel.EMAIL, Channel.API, Channel.WEB)


def ack_refusal(contact: Contact, settings: RouterSettings) -> str | None:
    """Why this contact must not be acknowledged, or None when it may be."""
    if not settings.acks.enabled:
        return "acks-disabled"
    if contact.channel is Channel.SLACK:
        return _slack_refusal(contact, settings)
    if contact.channel not in ACKED_BY_EMAIL:
        return "not-email"
    if contact.is_automatic:
        return contact.auto.value
    if contact.envelope_sender is not None and contact.envelope_sender.strip("<>") == "":
        return "null-sender"
    if any(r.partition("@")[0] in _MAIL_SYSTEM_MAILBOXES for r in contact.recipients):
        return "to-postmaster"
    sender = contact.sender.email
    if not sender:
        return "no-address"
    if sender in settings.our_addresses:
        return "own-address"
    if is_role_address(sender):
        return "role-address"
    if contact.channel is Channel.EMAIL and not settings.our_addresses.intersection(
        contact.visible_recipients
    ):
        return "bcc-only"
    return None


def _slack_refusal(contact: Contact, settings: RouterSettings) -> str | None:
    if "slack" not in settings.outbound_transports:
        return "slack-not-enabled"
    if contact.is_automatic:
        return contact.auto.value
    if not contact.sender.slack_user_id:
        return "no-address"
    if not contact.thread.chat_thread or ":" not in contact.thread.chat_thread:
        return "no-thread"
    return None


# Built once (asked for every new ticket); each is a short range on an outbox index.
_SINCE = sa.bindparam("since", type_=outbox.c.created_at.type)
_SENT_TO = (
    sa.select(sa.func.count())
    .select_from(outbox)
    .where(
        outbox.c.kind == sa.bindparam("kind"),
        outbox.c.recipient == sa.bindparam("recipient"),
        outbox.c.created_at > _SINCE,
    )
)
_SENT_SINCE = (
    sa.select(sa.func.count())
    .select_from(outbox)
    .where(outbox.c.kind == sa.bindparam("kind"), outbox.c.created_at > _SINCE)
)


def rate_refusal(
    conn: Connection,
    sender: str,
    settings: RouterSettings,
    now: datetime,
    kind: str = ACK,
    *,
    global_limit: bool = True,
    new_sender: bool = False,
) -> str | None:
    """Why the rate limits refuse an ack now, or None. ``new_sender``: the requester was created
    by this very contact, so it has had no ack yet and its count is skipped (a statement saved
    on every first contact)."""
    if not new_sender:
        # Another gateway may be counting this sender's acks now: wait for its COMMIT.
        lock_names(conn, [f"acks:{kind}:{sender}"])
        per_sender = prepared.value(
            conn, _SENT_TO, {"kind": kind, "recipient": sender, "since": now - timedelta(hours=1)}
        )
        if per_sender >= settings.acks.per_sender_per_hour:
            return "sender-rate-limit"
    if not global_limit:
        return None
    overall = prepared.value(conn, _SENT_SINCE, {"kind": kind, "since": now - timedelta(minutes=1)})
    if overall >= settings.acks.global_per_minute:
        return "global-rate-limit"
    return None


def new_message_id(settings: RouterSettings, ticket_id: int) -> str:
    return f"spoc.{ticket_id}.{secrets.token_hex(8)}@{settings.message_id_domain}"


def queue_ack(
    conn: Connection,
    contact: Contact,
    ticket_id: int,
    ref: str,
    settings: RouterSettings,
    now: datetime,
    *,
    new_sender: bool = False,
    requester_id: int | None = None,
) -> tuple[str | None, str | None]:
    """Queue the acknowledgement if policy allows: (message id, None) or (None, reason)."""
    if reason := ack_refusal(contact, settings):
        return None, reason
    if contact.channel is Channel.SLACK:
        return queue_slack_ack(conn, contact, ticket_id, ref, settings, now)
    assert contact.sender.email is not None
    sender = ack_address(contact, settings)
    if reason := mail_safety_refusal(conn, contact, sender, settings, now, new_sender=new_sender):
        return None, reason
    if reason := rate_refusal(conn, sender, settings, now, new_sender=new_sender):
        return None, reason
    message_id = new_message_id(settings, ticket_id)
    references = [*contact.thread.references, contact.thread.message_id]
    legacy = legacy_address(contact, settings)
    notice = legacy is not None and owes_single_address_notice(conn, requester_id, settings)
    payload: dict[str, Any] = {
        "event": outbox_events.ACK,
        "to": sender,
        "from_address": settings.desk_address,
        "from_name": settings.from_name,
        "ticket_subject": contact.subject,
        "requester_name": contact.sender.name,
        "single_address_notice": (
            {"address": settings.desk_address, "legacy": legacy} if notice else None
        ),
        "message_id": message_id,
        "in_reply_to": contact.thread.message_id,
        "references": [r for r in references if r][-20:],
        "auto_submitted": "auto-replied",
        "ticket_ref": ref,
    }
    inserted = enqueue(
        conn,
        ACK,
        payload,
        key=f"ack:{ticket_id}:{sender}",
        ticket_id=ticket_id,
        recipient=sender,
        now=now,
    )
    if not inserted:
        return None, "already-acknowledged"
    if notice and requester_id is not None:
        record_notice(conn, requester_id, ticket_id, now, SINGLE_ADDRESS)
    return message_id, None


def ack_address(contact: Contact, settings: RouterSettings) -> str:
    """Where an email ack goes: the first ``Reply-To`` in the sender's own domain (a shared
    mailbox answering for a person), else ``From`` -- never a third domain, which would make
    the desk a backscatter source for forged Reply-To headers."""
    sender = contact.sender.email
    assert sender is not None
    domain = sender.rpartition("@")[2]
    for address in contact.reply_to:
        if address == sender or address.rpartition("@")[2] != domain:
            continue
        if address in settings.our_addresses or is_role_address(address):
            continue
        return address
    return sender


def mail_safety_refusal(
    conn: Connection,
    contact: Contact,
    to: str,
    settings: RouterSettings,
    now: datetime,
    *,
    new_sender: bool,
) -> str | None:
    """Why an email ack to ``to`` would feed relay spam or a dead mailbox, or None.

    With ``trusted_authserv_ids`` set, a first-time sender must have passed the MX's checks
    (``Contact.authenticated``); a known requester always may be answered. An address a bounce
    of ours marked undeliverable gets nothing."""
    came_by_mail = contact.channel is Channel.EMAIL  # the API vouches for its own callers
    if settings.trusted_authserv_ids and came_by_mail and new_sender:
        if contact.authenticated is not True:
            return "unauthenticated"
    if is_undeliverable(conn, to, now):
        return "undeliverable"
    return None


def queue_slack_ack(
    conn: Connection,
    contact: Contact,
    ticket_id: int,
    ref: str,
    settings: RouterSettings,
    now: datetime,
) -> tuple[str | None, str | None]:
    """``slack.ack`` in the contact's thread. The id returned is the thread's own ``chat:`` key
    (the router already maps it to the ticket), so nothing new is remembered."""
    user = contact.sender.slack_user_id
    thread = contact.thread.chat_thread
    assert user is not None and thread is not None
    # Only the per-user limit: a Slack ack goes to the thread the person just wrote in (no
    # backscatter to forged senders), and 120 colleagues asking at once should all hear back.
    if reason := rate_refusal(conn, user, settings, now, kind=SLACK_ACK, global_limit=False):
        return None, reason
    channel_id, _, thread_ts = thread.partition(":")
    payload: dict[str, Any] = {
        "event": outbox_events.ACK,
        "channel": channel_id,
        "thread_ts": thread_ts or None,
        "requester_name": contact.sender.name,
        "ticket_ref": ref,
    }
    inserted = enqueue(
        conn,
        SLACK_ACK,
        payload,
        key=f"ack:{ticket_id}:slack:{user}",
        ticket_id=ticket_id,
        recipient=user,
        now=now,
    )
    if not inserted:
        return None, "already-acknowledged"
    return f"chat:{thread}", None
