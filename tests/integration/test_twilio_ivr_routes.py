"""The IVR's fallback routes, followed through the action URLs the gateway writes.

``default_digit``: a caller who gives no usable answer ``max_retries`` times is routed to that
option, whose category lands on the ticket (a whole gateway, ``phone_desk``).

Business hours: ``[ivr]`` with a real ``[ivr.hours]`` table is read by the gateway's own config
loader; the resulting menu drives a :class:`TwilioChannel` built here with an injected clock (the
gateway always uses the wall clock), on a real aiohttp server over a real router and SQLite.
The desk is in Europe/Berlin (UTC+1 in November), open Monday to Friday, 08:00 to 18:00.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from channels.twilio import TwilioChannel, TwilioSettings
from gateway.config import load_config
from gateway.migrate import upgrade
from router.lookup import PhoneLookup
from router.router import Router
from router.settings import RouterSettings
from router.store import Store
from router.tickets import TicketQuery, TicketService
from tests.fakes.twilio_api import AUTH_TOKEN, TwilioPhone, sid
from tests.integration.gateway_harness import free_port, write_config
from tests.integration.twilio_support import IVR, PhoneDesk, phone_desk

ALICE = "+12025550100"
HOURS = """
[ivr.hours]
timezone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
open = "08:00"
close = "18:00"
"""


def only_ref(tickets: list[dict[str, Any]]) -> str:
    assert len(tickets) == 1, tickets
    return str(tickets[0]["ref"])


# ---- default_digit ---------------------------------------------------------------------------
@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[PhoneDesk]:
    async with phone_desk(tmp_path, sqlite_url, ivr_keys='default_digit = "2"') as running:
        yield running


async def test_after_max_retries_of_bad_input_and_silence_the_default_option_is_taken(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    menu = await call.start()
    first = await call.press(menu, "7")  # no such option: try 1 of max_retries = 2
    assert first.verbs == ["Gather", "Redirect"] and "n=1" in first.url("Gather")
    assert first.said.startswith("Sorry, I didn't get that.")
    second = await call.say(first, "bananas")  # speech that names no option: try 2
    assert second.verbs == ["Gather", "Redirect"] and "n=2" in second.url("Gather")
    record = await call.stay_silent(second)  # silence once more: the default route
    assert "Gather" not in record.verbs
    assert "p=2" in record.url("Record")
    assert "recorded" in record.said

    await call.record(record, sid("RE"))
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert (ticket["category"], ticket["kind"]) == ("locked_account", "service_request")
    assert "Menu choice: a locked account" in ticket["contacts"][0]["text"]


async def test_a_valid_choice_on_the_last_retry_wins_over_the_default(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    second = await call.stay_silent(await call.press(await call.start(), "7"))
    assert "n=2" in second.url("Gather")
    record = await call.press(second, "1")
    assert "p=1" in record.url("Record")
    await call.record(record, sid("RE"))
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["category"] == "broken_device"


# ---- business hours --------------------------------------------------------------------------
@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class HoursDesk:
    clock: Clock
    phone: TwilioPhone
    tickets: TicketService

    async def ticket(self) -> dict[str, Any]:
        page = await self.tickets.list(TicketQuery(limit=50))
        assert len(page.items) == 1, page.items
        return await self.tickets.get(str(page.items[0]["ref"]))


@pytest.fixture
async def hours_desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[HoursDesk]:
    config = load_config(write_config(tmp_path, db_url=sqlite_url, relay_port=1, extra=IVR + HOURS))
    assert config.ivr is not None
    menu = config.ivr.to_menu()
    assert menu.hours is not None  # the real [ivr.hours], converted as the gateway does
    await asyncio.to_thread(upgrade, sqlite_url)
    store = Store.from_url(sqlite_url)
    await store.start()
    settings = RouterSettings()
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    channel = TwilioChannel(
        TwilioSettings(
            auth_token=AUTH_TOKEN,
            public_base_url=base,
            menu=menu,
            spool_dir=tmp_path / "spool",
        ),
        Router(store, settings),
        PhoneLookup(store, "SD"),
        clock=clock,
    )
    app = web.Application()
    channel.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await channel.start()
    phone = TwilioPhone(base)
    try:
        yield HoursDesk(clock, phone, TicketService(store, settings))
    finally:
        await phone.close()
        await channel.stop(1)
        await runner.cleanup()
        await store.close()


async def test_a_call_in_business_hours_gets_the_menu_and_a_ticket_for_the_choice(
    hours_desk: HoursDesk,
) -> None:
    hours_desk.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
    call = hours_desk.phone.call(ALICE)
    menu = await call.start()
    assert menu.verbs == ["Gather", "Redirect"]
    assert "closed right now" not in menu.said
    record = await call.press(menu, "1")
    assert "ah=1" not in record.url("Record")
    await call.record(record, sid("RE"))
    ticket = await hours_desk.ticket()
    assert ticket["category"] == "broken_device"
    assert not ticket["subject"].startswith("After-hours")


async def test_a_call_after_closing_time_in_the_desks_timezone_gets_the_voicemail(
    hours_desk: HoursDesk,
) -> None:
    # Monday 17:30 UTC is within 08:00-18:00 in UTC, but 18:30 in Berlin: closed.
    hours_desk.clock.now = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    call = hours_desk.phone.call(ALICE)
    answer = await call.start()
    assert "Gather" not in answer.verbs
    assert "closed right now" in answer.said
    assert "ah=1" in answer.url("Record")
    await call.record(answer, sid("RE"))
    ticket = await hours_desk.ticket()
    assert ticket["subject"] == f"After-hours voicemail from {ALICE}"


@pytest.mark.parametrize(
    ("utc", "is_open"),
    [
        pytest.param(datetime(2026, 11, 23, 7, 0, tzinfo=UTC), True, id="monday-08:00-opens"),
        pytest.param(datetime(2026, 11, 23, 6, 59, tzinfo=UTC), False, id="monday-07:59-not-yet"),
        pytest.param(datetime(2026, 11, 27, 16, 59, tzinfo=UTC), True, id="friday-17:59-open"),
        pytest.param(datetime(2026, 11, 27, 17, 0, tzinfo=UTC), False, id="friday-18:00-closed"),
        pytest.param(datetime(2026, 11, 28, 10, 0, tzinfo=UTC), False, id="saturday-11:00-closed"),
    ],
)
async def test_the_menu_is_offered_exactly_within_the_configured_days_and_hours(
    hours_desk: HoursDesk, utc: datetime, is_open: bool
) -> None:
    hours_desk.clock.now = utc
    answer = await hours_desk.phone.call(ALICE).start()
    assert ("Gather" in answer.verbs) is is_open
    assert ("closed right now" in answer.said) is not is_open
