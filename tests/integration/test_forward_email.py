"""``kind = "email"`` over real sockets: the original mail with its attachments forwarded to a
vendor's helpdesk address, tagged with our ref, and the vendor's reply threaded back."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from tests.integration.forward_support import forwarding_gateway, wait_for_state

VENDOR = "support@acme-vendor.example"
CONFIG = f"""
[[routing]]
when = {{ subject_matches = "SAP" }}
group = "vendor-acme"

[[forward]]
name = "vendor-acme"
kind = "email"
to = "{VENDOR}"
when = {{ group = "vendor-acme" }}
"""


def _mail_with_log() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "servicedesk@example.com"
    msg["Subject"] = "SAP is down"
    msg["Message-ID"] = "<first@mail.example.org>"
    msg.set_content("Nobody can log in to SAP since 9:00.")
    msg.add_attachment(
        b"ERROR 500 at login\n", maintype="text", subtype="plain", filename="sap.log"
    )
    return msg.as_bytes()


async def test_original_mail_is_forwarded_whole_and_the_vendors_reply_threads_back(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, CONFIG, {}) as gw:
        ref = (await gw.send_mail(_mail_with_log())).queued_as
        await wait_for_state(gw, ref, "vendor-acme", "delivered")
        reply = (
            f"From: ACME Support <{VENDOR}>\r\nTo: servicedesk@example.com\r\n"
            f"Subject: Re: [{ref}] SAP is down\r\nMessage-ID: <v1@acme-vendor.example>\r\n\r\n"
            "We pushed a fix for the login service.\r\n"
        ).encode()
        answered = await gw.send_mail(reply, mail_from=VENDOR)
        messages = await gw.settle()
        ticket = await gw.ticket(ref)

    to_vendor = [m for m in messages if m["To"] == VENDOR]
    assert len(to_vendor) == 1  # the vendor's own reply is not sent back to it
    forward = to_vendor[0]
    assert forward["Subject"] == f"[{ref}] SAP is down"
    assert forward["Reply-To"] == "servicedesk@example.com"
    assert "Nobody can log in to SAP" in forward.get_body(("plain",)).get_content()
    (attached,) = [
        p for p in forward.iter_attachments() if p.get_content_type() == "message/rfc822"
    ]
    original = attached.get_content()
    assert original["Message-ID"] == "<first@mail.example.org>"
    assert [a.get_filename() for a in original.iter_attachments()] == ["sap.log"]
    assert answered.queued_as == ref
    assert ticket["contacts"][-1]["text"].startswith("We pushed a fix")
