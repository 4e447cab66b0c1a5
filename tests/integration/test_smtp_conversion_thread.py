"""Converting a large message (a 100 KB HTML mail: nh3 plus HTML to text, tens of ms) runs on a
worker thread, so the event loop keeps serving every other SMTP session meanwhile."""

from __future__ import annotations

import asyncio
import smtplib
import threading

from channels.smtp import SMTPChannel, SMTPChannelSettings
from normalizer.contact import Contact
from normalizer.intake import IntakeResult

DESK = "servicedesk@example.com"


class Intake:
    def __init__(self) -> None:
        self.contacts: list[Contact] = []

    async def submit(self, contact: Contact) -> IntakeResult:
        self.contacts.append(contact)
        n = len(self.contacts)
        return IntakeResult(f"SD-{n}", n, n, created=True, duplicate=False, thread_reason="new")


def html_mail(size: int) -> bytes:
    rows = "".join(
        f"<tr><td>printer {n}</td><td>jammed on floor {n % 7}</td></tr>\r\n" for n in range(size)
    )
    body = f"<html><body><p>Every printer is jammed.</p><table>{rows}</table></body></html>"
    return (
        f"From: Alice <alice@example.org>\r\nTo: {DESK}\r\nSubject: Printers\r\n"
        "Message-ID: <html-thread@client.test>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


async def test_a_100_kb_html_mail_is_converted_off_the_event_loop_thread() -> None:
    converted_on: list[threading.Thread] = []

    def record_thread(contact: Contact) -> Contact:  # a step runs right after the conversion
        converted_on.append(threading.current_thread())
        return contact

    intake = Intake()
    settings = SMTPChannelSettings(
        desk_address=DESK, port=0, hostname="mx.test", max_message_bytes=1 << 20
    )
    channel = SMTPChannel(settings, intake, steps=[record_thread])
    await channel.start()
    raw = html_mail(1_700)
    assert 90_000 < len(raw) < 120_000

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=30) as client:
            client.sendmail("alice@example.org", [DESK], raw)

    try:
        await asyncio.to_thread(send)
    finally:
        await channel.stop(grace_seconds=1)
    assert [c.subject for c in intake.contacts] == ["Printers"]
    assert "Every printer is jammed." in intake.contacts[0].text
    assert converted_on and converted_on[0] is not threading.main_thread()
