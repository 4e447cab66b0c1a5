"""Mail content end to end: an attachment over ``[email] max_attachment_bytes`` is on the ticket
as metadata with the reason, its bytes only in the raw message; inline images are attachments.
On SQLite and PostgreSQL (the attachment row needs no blob)."""

from __future__ import annotations

import email.message
import hashlib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

import normalizer.email
from router.schema import blobs, contacts
from router.stats import attachment_file
from tests.integration.gateway_harness import DESK, GatewayHarness, running_gateway
from tests.unit.normalizer.test_content import PNG, html_mail

BIG = b"\x00\x01" * 40_000  # 80 KB: over the 64 KiB limit below


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    keys = "max_attachment_bytes = 65536\n"
    async with running_gateway(tmp_path, db_url, email_keys=keys) as harness:
        yield harness


def mail_with_big_file() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = DESK
    msg["Subject"] = "Disk image"
    msg["Message-ID"] = "<big-1@example.org>"
    msg.set_content("The image of the broken disk.")
    msg.add_attachment(BIG, maintype="application", subtype="octet-stream", filename="disk.img")
    msg.add_attachment(b"log line", maintype="text", subtype="plain", filename="small.log")
    return msg.as_bytes()


async def test_a_big_attachment_is_metadata_on_the_ticket_and_bytes_in_the_raw_mail(
    desk: GatewayHarness,
) -> None:
    raw = mail_with_big_file()
    sent = await desk.send_mail(raw)
    ticket = await desk.ticket(sent.queued_as)
    big, small = ticket["contacts"][0]["attachments"]
    assert big == {
        "filename": "disk.img",
        "content_type": "application/octet-stream",
        "size": len(BIG),
        "sha256": hashlib.sha256(BIG).hexdigest(),
        "omitted": "over 64 KiB: kept in the raw message only",
    }
    assert "omitted" not in small and small["size"] == len(b"log line")
    assert desk.gw.store is not None
    stored_blobs = await desk.gw.store.read(
        lambda c: set(c.execute(sa.select(blobs.c.sha256)).scalars())
    )
    assert stored_blobs == set()  # both files are stored once: inside the raw message
    kept_raw = await desk.gw.store.read(lambda c: c.execute(sa.select(contacts.c.raw)).scalar())
    assert len(kept_raw) >= len(raw)  # the whole message, both files inside it
    assert await download(desk, small["sha256"]) == ("small.log", b"log line")
    assert await download(desk, big["sha256"]) is None  # over the limit: not served


def mail_to_desk(subject: str, text: str) -> EmailMessage:
    """A mail from Alice to the desk with ``text``, files to be added."""
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = DESK
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-').lower()}@example.org>"
    msg.set_content(text)
    return msg


async def download(desk: GatewayHarness, sha256: str) -> tuple[str, bytes] | None:
    """What the dashboard serves for the file (the only contact's attachment ``sha256``)."""
    assert desk.gw.store is not None

    def read(conn: sa.Connection) -> tuple[str, bytes] | None:
        contact_id = conn.execute(sa.select(contacts.c.id)).scalar_one()
        return attachment_file(conn, contact_id, sha256)

    return await desk.gw.store.read(read)


async def test_each_file_of_a_mail_is_stored_once_and_served_byte_for_byte(
    desk: GatewayHarness,
) -> None:
    msg = mail_to_desk("Files", "Three files and a forwarded mail.")
    files = {
        "shot.png": PNG,
        "notes.txt": "caf\u00e9 notes\n".encode(),
        "dump.bin": bytes(range(256)) * 100,
    }
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    inner = EmailMessage()
    inner["Subject"] = "the original"
    inner.set_content("forwarded body")
    msg.add_attachment(inner)
    sent = await desk.send_mail(msg.as_bytes())
    [contact] = (await desk.ticket(sent.queued_as))["contacts"]
    assert desk.gw.store is not None
    stored_blobs = await desk.gw.store.read(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(blobs)).scalar()
    )
    assert stored_blobs == 0
    served = {a["filename"]: await download(desk, a["sha256"]) for a in contact["attachments"]}
    for name, data in files.items():
        assert served[name] == (name, data)
    [forwarded] = [v for k, v in served.items() if k not in files]
    assert forwarded is not None and b"forwarded body" in forwarded[1]


async def test_a_download_decodes_its_own_part_without_parsing_the_whole_mail(
    desk: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = mail_to_desk("Two files", "A dump and the log.")
    dump = bytes(range(256)) * 200  # 51 KB, kept in the raw message
    msg.add_attachment(dump, maintype="application", subtype="octet-stream", filename="dump.bin")
    msg.add_attachment(b"the log", maintype="text", subtype="plain", filename="small.log")
    raw = msg.as_bytes()
    sent = await desk.send_mail(raw)
    [contact] = (await desk.ticket(sent.queued_as))["contacts"]
    parsed: list[int] = []
    whole_parse = normalizer.email._parse

    def parse(data: bytes) -> email.message.Message:
        parsed.append(len(data))
        return whole_parse(data)

    monkeypatch.setattr(normalizer.email, "_parse", parse)
    served = {a["filename"]: await download(desk, a["sha256"]) for a in contact["attachments"]}

    assert served == {"dump.bin": ("dump.bin", dump), "small.log": ("small.log", b"the log")}
    assert parsed and max(parsed) < len(raw)  # each file's own part, never the whole mail


async def test_an_inline_image_is_an_attachment_and_named_in_the_text(
    desk: GatewayHarness,
) -> None:
    sent = await desk.send_mail(html_mail())
    [contact] = (await desk.ticket(sent.queued_as))["contacts"]
    [image] = [a for a in contact["attachments"] if a["content_type"] == "image/png"]
    assert image["size"] == len(PNG)
    assert f"[image: {image['filename']}]" in contact["text"]
    assert "[remote image not loaded: tracker.example.net]" in contact["text"]
