"""EmailSender against a real aiosmtpd sink in the test's loop on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.outbound import DeliveryError
from channels.outbound.email import EmailSender, OutboundSMTPSettings
from channels.outbound.email_text import EmailWording


@dataclass
class Sink:
    """Records every envelope; ``rcpt_reply`` / ``data_reply`` override the 250s."""

    envelopes: list[Envelope] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None
    port: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: queued as ABC123"

    def received(self) -> EmailMessage:
        [envelope] = self.envelopes
        assert isinstance(envelope.original_content, bytes)
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="relay.test", enable_SMTPUTF8=True), "127.0.0.1", 0
    )
    sink.port = server.sockets[0].getsockname()[1]
    yield sink
    server.close()
    await server.wait_closed()


def sender_for(port: int, wording: EmailWording | None = None, **overrides: Any) -> EmailSender:
    return EmailSender(
        OutboundSMTPSettings(
            host="127.0.0.1",
            port=port,
            timeout_seconds=10,
            helo_hostname="spoc.test",
            **overrides,
        ),
        wording,
    )


def ack_payload(**overrides: Any) -> dict[str, Any]:
    """An ``email.ack`` as the router queues it: the facts, worded by the sender."""
    return {
        "event": "ack",
        "to": "alice@example.org",
        "from_address": "servicedesk@example.com",
        "from_name": "IT Service Desk",
        "ticket_subject": "Printer on fire",
        "requester_name": "Jörg Grüße",
        "single_address_notice": None,
        "message_id": "spoc.42.3.ab12@servicedesk.example.com",
        "in_reply_to": "orig@mail.example.org",
        "references": ["a@x", "orig@mail.example.org"],
        "auto_submitted": "auto-replied",
        "ticket_ref": "SD-42",
    } | overrides


async def test_ack_carries_threading_loop_and_auto_submitted_headers(sink: Sink) -> None:
    reply = await sender_for(sink.port).send(ack_payload())
    assert "ABC123" in reply
    [envelope] = sink.envelopes
    assert envelope.mail_from == "servicedesk@example.com"
    assert envelope.rcpt_tos == ["alice@example.org"]
    msg = sink.received()
    assert msg["From"] == "IT Service Desk <servicedesk@example.com>"
    assert msg["To"] == "alice@example.org"
    assert msg["Subject"] == "[SD-42] Printer on fire"
    assert msg["Message-ID"] == "<spoc.42.3.ab12@servicedesk.example.com>"
    assert msg["In-Reply-To"] == "<orig@mail.example.org>"
    assert msg["References"] == "<a@x> <orig@mail.example.org>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Loop"] == "servicedesk@example.com"
    assert msg["Date"] is not None and msg["Date"].datetime.tzinfo is not None
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"  # 7-bit clean on the wire
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith("Hello Jörg Grüße,\n\n")
    assert "Your request is logged as SD-42: Printer on fire." in body
    assert body.endswith("-- \nIT Service Desk\n")


async def test_a_reply_is_threaded_under_re_with_the_agents_words(sink: Sink) -> None:
    payload = ack_payload(event="reply", text="Unplug it.", auto_submitted=None)
    await sender_for(sink.port).send(payload)
    msg = sink.received()
    assert msg["Subject"] == "Re: [SD-42] Printer on fire"
    assert msg.get_content().strip() == "Unplug it."
    assert msg["Auto-Submitted"] is None


async def test_the_one_address_notice_is_worded_by_the_senders_settings(sink: Sink) -> None:
    notice = {"address": "servicedesk@example.com", "legacy": "helpdesk@example.com"}
    wording = EmailWording(single_address_notice="Only {address} now, not {legacy}.")
    await sender_for(sink.port, wording).send(ack_payload(single_address_notice=notice))
    body = sink.received().get_content().replace("\r\n", "\n")
    assert body.startswith("Only servicedesk@example.com now, not helpdesk@example.com.\n\nHello")


async def test_an_ack_queued_before_the_upgrade_is_still_delivered_as_worded(sink: Sink) -> None:
    """A row pending in the database from an older version holds the finished wording."""
    old = {
        "to": "alice@example.org",
        "from_address": "servicedesk@example.com",
        "from_name": "IT Service Desk",
        "subject": "[SD-42] Printer on fire",
        "text": "We have your request SD-42.\nGrüße, the desk",
        "message_id": "spoc.42.3.ab12@servicedesk.example.com",
        "in_reply_to": "orig@mail.example.org",
        "references": ["a@x", "orig@mail.example.org"],
        "auto_submitted": "auto-replied",
        "ticket_ref": "SD-42",
    }
    await sender_for(sink.port).send(old)
    msg = sink.received()
    assert msg["Subject"] == "[SD-42] Printer on fire"
    assert msg["Auto-Submitted"] == "auto-replied"
    body = msg.get_content().replace("\r\n", "\n")
    assert body == "We have your request SD-42.\nGrüße, the desk\n"


async def test_reply_has_no_auto_submitted_and_uses_configured_loop_marker(sink: Sink) -> None:
    payload = ack_payload(auto_submitted=None, in_reply_to=None, references=["orig@x"])
    await sender_for(sink.port, loop_marker="desk-loop@example.com").send(payload)
    msg = sink.received()
    assert msg["Auto-Submitted"] is None
    assert msg["In-Reply-To"] is None
    assert msg["References"] == "<orig@x>"
    assert msg["X-Loop"] == "desk-loop@example.com"


async def test_in_reply_to_is_appended_to_references_when_missing(sink: Sink) -> None:
    await sender_for(sink.port).send(ack_payload(references=["a@x"]))
    assert sink.received()["References"] == "<a@x> <orig@mail.example.org>"


async def test_line_breaks_in_subject_cannot_inject_headers(sink: Sink) -> None:
    await sender_for(sink.port).send(ack_payload(ticket_subject="Help\r\nBcc: victim@evil.test"))
    msg = sink.received()
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[SD-42] Help Bcc: victim@evil.test"
    assert sink.envelopes[0].rcpt_tos == ["alice@example.org"]


async def test_internationalized_recipient_is_sent_with_smtputf8(sink: Sink) -> None:
    await sender_for(sink.port).send(ack_payload(to="j\u00f6rg@ex\u00e4mple.de"))
    [envelope] = sink.envelopes
    assert envelope.rcpt_tos == ["j\u00f6rg@ex\u00e4mple.de"]
    assert "SMTPUTF8" in envelope.mail_options
    assert sink.received()["To"] == "j\u00f6rg@ex\u00e4mple.de"


async def test_refused_recipient_is_a_permanent_delivery_error(sink: Sink) -> None:
    sink.rcpt_reply = "550 5.1.1 No such user"
    with pytest.raises(DeliveryError) as caught:
        await sender_for(sink.port).send(ack_payload())
    assert caught.value.permanent
    assert "550" in str(caught.value)


async def test_temporary_failure_at_data_is_a_temporary_delivery_error(sink: Sink) -> None:
    sink.data_reply = "451 4.3.0 Try later"
    with pytest.raises(DeliveryError) as caught:
        await sender_for(sink.port).send(ack_payload())
    assert not caught.value.permanent
    assert "451" in str(caught.value)


async def test_refused_connection_is_a_temporary_delivery_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(DeliveryError) as caught:
        await sender_for(free_port).send(ack_payload())
    assert not caught.value.permanent


@pytest.mark.parametrize(
    "overrides",
    [{"to": "not an address"}, {"to": None}, {"message_id": ""}, {"references": "a@x"}],
)
async def test_malformed_payload_is_a_permanent_delivery_error_and_sends_nothing(
    sink: Sink, overrides: dict[str, Any]
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender_for(sink.port).send(ack_payload(**overrides))
    assert caught.value.permanent
    assert sink.envelopes == []
