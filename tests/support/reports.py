"""Delivery-status reports (RFC 3464) as an MTA writes them, for tests of bounce handling."""

from __future__ import annotations


def delivery_report(
    returned: bytes,
    *,
    recipient: str = "alice@example.org",
    action: str = "failed",
    returned_type: str = "message/rfc822",
    to: str = "servicedesk@example.com",
) -> bytes:
    """A ``multipart/report`` bounce of ``returned`` (a message, or only its headers)."""
    head = f"""From: Mail Delivery System <MAILER-DAEMON@relay.example.org>
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@relay.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0"

--b0
Content-Type: text/plain

Your message could not be delivered.

--b0
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.org

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: 5.2.2

--b0
Content-Type: {returned_type}

"""
    return head.encode() + returned + b"\n--b0--\n"
