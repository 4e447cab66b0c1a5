"""Degraded mode: the database is down while people call and text; nothing they said is lost.

The Twilio channel runs on a real aiohttp server over a real router and SQLite store, with an
intake (and ticket lookup) that fail with ``TemporaryIntakeError`` until the test "brings the
database back"; the channel's spool replayer must then ingest everything, exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from channels.twilio import Menu, MenuOption, TwilioChannel, TwilioSettings
from gateway.migrate import upgrade
from normalizer.contact import Contact
from normalizer.intake import IntakeResult, TemporaryIntakeError
from router.lookup import PhoneLookup
from router.router import Router
from router.settings import RouterSettings
from router.store import Store
from router.tickets import TicketQuery, TicketService
from tests.fakes.twilio_api import AUTH_TOKEN, TwilioPhone, sid
from tests.integration.gateway_harness import free_port

ALICE = "+12025550100"
MENU = Menu(options=(MenuOption("1", "a broken device", "broken_device"),))


@dataclass
class Outage:
    router: Router
    lookup: PhoneLookup
    down: bool = True

    async def submit(self, contact: Contact) -> IntakeResult:
        if self.down:
            raise TemporaryIntakeError("database unavailable")
        return await self.router.submit(contact)

    async def open_ticket_for_phone(self, phone: str, within_seconds: float) -> str | None:
        if self.down:
            raise TemporaryIntakeError("database unavailable")
        return await self.lookup.open_ticket_for_phone(phone, within_seconds)

    async def ticket_for_call(self, call_sid: str) -> str | None:
        if self.down:
            raise TemporaryIntakeError("database unavailable")
        return await self.lookup.ticket_for_call(call_sid)


@dataclass
class Desk:
    outage: Outage
    channel: TwilioChannel
    tickets: TicketService
    phone: TwilioPhone
    spool: Path

    async def refs(self) -> list[str]:
        page = await self.tickets.list(TicketQuery(limit=50))
        return [str(item["ref"]) for item in page.items]

    async def wait_for_empty_spool(self) -> None:
        async with asyncio.timeout(10):
            while list(self.spool.glob("*.json")):  # noqa: ASYNC110 - files have no event
                await asyncio.sleep(0.02)


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Desk]:
    await asyncio.to_thread(upgrade, sqlite_url)
    store = Store.from_url(sqlite_url)
    await store.start()
    settings = RouterSettings()
    outage = Outage(Router(store, settings), PhoneLookup(store, "SD"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    channel = TwilioChannel(
        TwilioSettings(
            auth_token=AUTH_TOKEN,
            public_base_url=base,
            menu=MENU,
            spool_dir=spool,
            spool_retry_seconds=0.05,
        ),
        outage,
        outage,
    )
    app = web.Application()
    channel.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await channel.start()
    phone = TwilioPhone(base)
    try:
        yield Desk(outage, channel, TicketService(store, settings), phone, spool)
    finally:
        await phone.close()
        await channel.stop(1)
        await runner.cleanup()
        await store.close()


async def test_with_the_database_down_a_caller_still_leaves_a_voicemail_that_arrives_later(
    desk: Desk,
) -> None:
    call = desk.phone.call(ALICE)
    menu = await call.start()
    assert "open ticket" not in menu.said  # the lookup failed; the menu did not
    record = await call.press(menu, "1")
    recording = sid("RE")
    goodbye = await call.record(record, recording)
    assert goodbye.status == 200
    assert "We have your message" in goodbye.said
    assert (await call.transcribed(record, sid("TR"), recording, "Screen broken")).status == 200
    assert (await call.recording_ready(record, recording)).status == 200
    spooled = sorted(desk.spool.glob("*.json"))
    assert len(spooled) == 3
    assert json.loads(spooled[0].read_bytes())["record"]["call_sid"] == call.call_sid
    assert await desk.refs() == []

    desk.outage.down = False
    await desk.wait_for_empty_spool()
    refs = await desk.refs()
    assert len(refs) == 1
    ticket = await desk.tickets.get(refs[0])
    assert ticket["category"] == "broken_device"
    assert len(ticket["contacts"]) == 2  # recording (once, though spooled twice) + transcript


async def test_a_text_during_an_outage_gets_a_polite_reply_and_is_ingested_later(
    desk: Desk,
) -> None:
    answer = await desk.phone.sms(ALICE, "VPN down")
    assert answer.root.findtext("Message") == (
        "Thanks, we have your message and will get back to you soon."
    )
    desk.outage.down = False
    await desk.wait_for_empty_spool()
    assert len(await desk.refs()) == 1


async def test_replaying_a_record_twice_makes_nothing_twice(desk: Desk) -> None:
    await desk.phone.sms(ALICE, "VPN down")
    (spooled,) = desk.spool.glob("*.json")
    copy = spooled.read_bytes()
    desk.outage.down = False
    await desk.wait_for_empty_spool()
    (desk.spool / spooled.name).write_bytes(copy)  # as if the delete had been lost in a crash
    await desk.wait_for_empty_spool()
    refs = await desk.refs()
    assert len(refs) == 1
    assert len((await desk.tickets.get(refs[0]))["contacts"]) == 1


async def test_a_corrupt_spool_file_is_moved_aside_not_retried_forever(desk: Desk) -> None:
    desk.spool.mkdir(parents=True, exist_ok=True)
    (desk.spool / "00000000000000000001-dead.json").write_text("{not json")
    desk.outage.down = False
    await desk.wait_for_empty_spool()
    assert (desk.spool / "rejected" / "00000000000000000001-dead.json").exists()
