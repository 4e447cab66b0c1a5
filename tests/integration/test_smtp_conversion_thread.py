"""Converting a large message (a 100 KB HTML mail: nh3 plus HTML to text, tens of ms) runs in the
channel's conversion process pool (not even on a thread of the loop's process, which would hold
the GIL), so the event loop keeps serving every other SMTP session meanwhile; if the pool is
broken, on a worker thread."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import random
import smtplib
import subprocess
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from channels.smtp import SMTPChannel, SMTPChannelSettings
from normalizer.contact import Contact, ContactStep
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


def record_thread(converted_on: list[threading.Thread]) -> ContactStep:
    def step(contact: Contact) -> Contact:  # a step runs right after the conversion
        converted_on.append(threading.current_thread())
        return contact

    return step


async def send_big_html(channel: SMTPChannel) -> None:
    raw = html_mail(1_700)
    assert 90_000 < len(raw) < 120_000

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=30) as client:
            client.sendmail("alice@example.org", [DESK], raw)

    await asyncio.to_thread(send)


def big_channel(intake: Intake, converted_on: list[threading.Thread]) -> SMTPChannel:
    settings = SMTPChannelSettings(
        desk_address=DESK, port=0, hostname="mx.test", max_message_bytes=1 << 20
    )
    return SMTPChannel(settings, intake, steps=[record_thread(converted_on)])


async def test_a_100_kb_html_mail_is_converted_in_another_process() -> None:
    converted_on: list[threading.Thread] = []
    intake = Intake()
    channel = big_channel(intake, converted_on)
    await channel.start()
    try:
        await send_big_html(channel)
        assert channel.conversions.converted_in_process == 1
    finally:
        await channel.stop(grace_seconds=1)
    assert [c.subject for c in intake.contacts] == ["Printers"]
    assert "Every printer is jammed." in intake.contacts[0].text
    assert intake.contacts[0].raw.startswith(b"From: Alice")  # the raw bytes put back
    assert converted_on and converted_on[0] is not threading.main_thread()


def attachment_mail(html: bool = False) -> bytes:
    """~100 KB: a line of text and a 72 KB PDF (base64), or only HTML (~100 KB, base64)."""
    parts = "--B\r\nContent-Type: application/pdf\r\n"
    body = PDF
    if html:
        parts = "--B\r\nContent-Type: text/html; charset=utf-8\r\n"
        body = html_mail(1_200).split(b"\r\n\r\n", 1)[1]
    else:
        parts = f"--B\r\nContent-Type: text/plain\r\n\r\n{PDF_TEXT}\r\n{parts}"
    head = (
        f"From: Alice <alice@example.org>\r\nTo: {DESK}\r\nSubject: Screenshot\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
    )
    encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
    cte = "Content-Transfer-Encoding: base64\r\n\r\n"
    return (head + parts + cte).encode() + encoded + b"--B--\r\n"


PDF_TEXT = "The error is in the attachment."
PDF = random.Random(7).randbytes(72_000)


async def send(channel: SMTPChannel, raw: bytes) -> None:
    def client() -> None:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=30) as smtp:
            smtp.sendmail("alice@example.org", [DESK], raw)

    await asyncio.to_thread(client)


async def test_a_100_kb_mail_that_is_mostly_an_attachment_is_converted_on_the_loop() -> None:
    converted_on: list[threading.Thread] = []
    intake = Intake()
    channel = big_channel(intake, converted_on)
    await channel.start()
    try:
        raw = attachment_mail()
        assert 90_000 < len(raw) < 120_000
        await send(channel, raw)
        assert channel.conversions.converted_in_process == 0  # no trip to the pool
    finally:
        await channel.stop(grace_seconds=1)
    assert converted_on == [threading.main_thread()]
    [contact] = intake.contacts
    assert contact.text == PDF_TEXT
    assert [a.sha256 for a in contact.attachments] == [hashlib.sha256(PDF).hexdigest()]


class SlowStep:
    """A step that says it may take long (as the fax step, which counts a PDF's pages)."""

    off_loop = True

    def __init__(self) -> None:
        self.ran_on: list[threading.Thread] = []

    def __call__(self, contact: Contact) -> Contact:
        self.ran_on.append(threading.current_thread())
        return contact


async def test_a_step_that_may_take_long_runs_off_the_loop_when_the_mail_is_converted_on_it() -> (
    None
):
    slow = SlowStep()
    intake = Intake()
    settings = SMTPChannelSettings(
        desk_address=DESK, port=0, hostname="mx.test", max_message_bytes=1 << 20
    )
    channel = SMTPChannel(settings, intake, steps=[slow])
    await channel.start()
    try:
        await send(channel, attachment_mail())  # converted on the loop (the test above)
        assert channel.conversions.converted_in_process == 0
    finally:
        await channel.stop(grace_seconds=1)
    assert len(slow.ran_on) == 1 and slow.ran_on[0] is not threading.main_thread()
    assert [a.sha256 for a in intake.contacts[0].attachments] == [hashlib.sha256(PDF).hexdigest()]


async def test_a_100_kb_html_body_sent_base64_still_goes_to_the_pool() -> None:
    converted_on: list[threading.Thread] = []
    intake = Intake()
    channel = big_channel(intake, converted_on)
    await channel.start()
    try:
        raw = attachment_mail(html=True)
        assert 90_000 < len(raw) < 160_000
        await send(channel, raw)
        assert channel.conversions.converted_in_process == 1
    finally:
        await channel.stop(grace_seconds=1)
    assert converted_on and converted_on[0] is not threading.main_thread()
    assert "Every printer is jammed." in intake.contacts[0].text


async def test_a_broken_pool_falls_back_to_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    converted_on: list[threading.Thread] = []
    intake = Intake()
    channel = big_channel(intake, converted_on)
    await channel.start()
    try:
        pool = channel.conversions._pool
        assert pool is not None
        with pytest.raises(BrokenProcessPool):  # a pool process dies: the pool is broken
            await asyncio.wrap_future(pool.submit(os._exit, 1))
        with caplog.at_level(logging.ERROR, logger="channels.mail_conversion"):
            await send_big_html(channel)
            await send_big_html(channel)
        assert channel.conversions.converted_in_process == 0
    finally:
        await channel.stop(grace_seconds=1)
    assert [c.subject for c in intake.contacts] == ["Printers", "Printers"]
    assert "Every printer is jammed." in intake.contacts[1].text
    assert len([r for r in caplog.records if "pool broken" in r.getMessage()]) == 1
    assert converted_on and converted_on[0] is not threading.main_thread()


_POOL_THEN_WAIT = """
import asyncio, sys
from channels.mail_conversion import ConversionPool

async def main():
    pool = ConversionPool(1)
    pool.start()
    await pool.convert(b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
    print(*[p.pid for p in pool._pool._processes.values()], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_pool_processes_end_when_the_gateway_is_killed() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _POOL_THEN_WAIT], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    children = [int(pid) for pid in server.stdout.readline().split()]
    assert children
    server.kill()  # kill -9: no shutdown of the pool
    server.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
