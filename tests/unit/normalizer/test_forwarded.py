"""Mail forwarded in by an agent: the requester is the original sender, the forward recorded."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from normalizer.contact import Contact
from normalizer.email import contact_from_email
from normalizer.forwarded import ForwardedStep, forwarded_block

STEP = ForwardedStep(("*@it.example.com", "bob.agent@example.com"), convert=contact_from_email)

GMAIL = """FYI, she called about this too.

---------- Forwarded message ---------
From: Alice Smith <alice@example.org>
Date: Mon, 30 Nov 2026 at 09:12
Subject: VPN keeps dropping
To: Bob <bob.agent@example.com>


Hi Bob, the VPN drops every ten minutes.
Alice
"""
OUTLOOK = """Please handle.

-----Original Message-----
From: Alice Smith [mailto:alice@example.org]
Sent: Monday, November 30, 2026 9:12 AM
To: Bob Agent
Subject: VPN keeps dropping

Hi Bob, the VPN drops every ten minutes.
"""
APPLE = """Begin forwarded message:

> From: "Smith, Alice" <alice@example.org>
> Subject: VPN keeps dropping
> Date: 30 November 2026 at 09:12:00 CET
> To: bob.agent@example.com
>
> Hi Bob, the VPN drops every ten minutes.
"""
THUNDERBIRD = """

-------- Forwarded Message --------
Subject: 	VPN keeps dropping
Date: 	Mon, 30 Nov 2026 09:12:00 +0100
From: 	Alice Smith <alice@example.org>
To: 	bob.agent@example.com

Hi Bob, the VPN drops every ten minutes.
"""


def mail(sender: str, subject: str, body: str, attach: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "servicedesk@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<fwd-1@example.com>"
    msg.set_content(body)
    if attach is not None:
        msg.add_attachment(attach, maintype="message", subtype="rfc822", filename="orig.eml")
    return msg.as_bytes()


def original() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice Smith <alice@example.org>"
    msg["To"] = "bob.agent@example.com"
    msg["Subject"] = "VPN keeps dropping"
    msg["Message-ID"] = "<orig-1@example.org>"
    msg.set_content("Hi Bob, the VPN drops every ten minutes.")
    msg.add_attachment(b"log", maintype="text", subtype="plain", filename="vpn.log")
    return msg.as_bytes()


def forward(raw: bytes) -> Contact:
    return STEP(contact_from_email(raw))


@pytest.mark.parametrize("body", [GMAIL, OUTLOOK, APPLE, THUNDERBIRD], ids=lambda b: b[:12])
def test_an_inline_forward_from_an_agent_comes_from_the_original_sender(body: str) -> None:
    contact = forward(mail("Bob Agent <bob.agent@example.com>", "Fwd: VPN keeps dropping", body))
    assert contact.sender.email == "alice@example.org"
    assert contact.sender.name in ("Alice Smith", "Smith, Alice")
    assert contact.forwarded_by == "bob.agent@example.com"
    assert contact.subject == "VPN keeps dropping"
    assert contact.text.startswith("Forwarded by bob.agent@example.com")
    assert "Hi Bob, the VPN drops every ten minutes." in contact.text
    assert "-----" not in contact.text and "> " not in contact.text


def test_the_agents_note_is_kept_above_the_forwarded_text() -> None:
    contact = forward(mail("bob.agent@example.com", "Fwd: VPN", GMAIL))
    assert contact.text.startswith(
        "Forwarded by bob.agent@example.com:\nFYI, she called about this too.\n\nHi Bob"
    )


def test_an_attached_message_is_the_contact_and_is_referenced_for_threading() -> None:
    raw = mail("carol@it.example.com", "Fwd: VPN keeps dropping", "see attached", original())
    contact = forward(raw)
    assert contact.sender.email == "alice@example.org"
    assert contact.forwarded_by == "carol@it.example.com"
    assert contact.subject == "VPN keeps dropping"
    assert contact.thread.references[-1] == "orig-1@example.org"
    assert contact.external_id == "fwd-1@example.com"  # the forward itself is what arrived
    assert [a.filename for a in contact.attachments] == ["vpn.log", "orig.eml"]
    assert contact.text == (
        "Forwarded by carol@it.example.com:\nsee attached\n\n"
        "Hi Bob, the VPN drops every ten minutes."
    )


def test_a_forward_from_anybody_but_an_agent_is_left_alone() -> None:
    raw = mail("mallory@example.net", "Fwd: VPN keeps dropping", GMAIL)
    contact = contact_from_email(raw)
    assert STEP(contact) is contact


def test_an_agents_own_mail_without_a_forward_is_left_alone() -> None:
    raw = mail("bob.agent@example.com", "The printer on 3 is broken", "It jams.")
    assert forward(raw).sender.email == "bob.agent@example.com"
    assert forward(raw).forwarded_by is None


def test_a_forward_of_another_agents_mail_keeps_the_forwarding_agent() -> None:
    body = GMAIL.replace("Alice Smith <alice@example.org>", "Dan <dan@it.example.com>")
    assert forward(mail("bob.agent@example.com", "Fwd: x", body)).forwarded_by is None


def test_a_block_without_a_readable_sender_is_no_forward() -> None:
    assert forwarded_block("---------- Forwarded message ---------\nFrom: nobody\n\nhi") is None
    assert forwarded_block("no marker here\nFrom: alice@example.org") is None
