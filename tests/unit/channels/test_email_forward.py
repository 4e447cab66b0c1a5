"""``channels.outbound.email_forward``: the mail a helpdesk that takes mail receives."""

from __future__ import annotations

import pytest

from channels.outbound.email import EmailSender, OutboundSMTPSettings
from channels.outbound.email_forward import EmailForwarder, EmailForwardSettings
from channels.outbound.forward import ForwardJob

FORWARDER = EmailForwarder(
    EmailForwardSettings(
        name="vendor",
        to="support@acme-vendor.example",
        desk_address="servicedesk@example.com",
        from_name="IT Service Desk",
        message_id_domain="example.com",
    ),
    EmailSender(OutboundSMTPSettings()),
)


def job(subject: str) -> ForwardJob:
    return ForwardJob(
        event="ticket.created",
        ticket={"ref": "SD-42", "subject": subject, "priority": "normal", "requester": {}},
        contact={"channel": "email", "text": "It is down."},
        external_key=None,
        external_id=None,
        idempotency_key="SD-42:7",
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("SAP is down", "[SD-42] SAP is down"),
        ("[SD-42] SAP is down", "[SD-42] SAP is down"),
        ("Re: [sd-42] SAP is down", "Re: [sd-42] SAP is down"),
        ("", "[SD-42] (no subject)"),
    ],
)
def test_the_forwards_subject_carries_our_ref_once(subject: str, expected: str) -> None:
    assert FORWARDER.message(job(subject))["Subject"] == expected


def test_a_tag_of_another_ticket_does_not_stand_for_ours() -> None:
    subject = FORWARDER.message(job("Fwd: [SD-7] SAP is down"))["Subject"]
    assert subject == "[SD-42] Fwd: [SD-7] SAP is down"
