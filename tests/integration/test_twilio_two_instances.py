"""One call, two gateways on one PostgreSQL: the call-status callback lands on another instance.

Twilio's call-status callback is set on the number in the console, not written by spoc into a
TwiML URL, so it carries no menu state; behind a load balancer it may reach another instance
than the menu steps did. Before the call's progress was kept in the database, that instance
knew nothing of the call: a caller who pressed 1 and hung up left a call-back ticket without
the choice, a call that was put through left a call-back ticket anyway, and a caller who hung
up while recording left a second, "call back" contact beside the message.

Each instance is a whole gateway (``phone_desk``); requests are signed with Twilio's
``RequestValidator`` for the instance's own URL, as the load balancer's would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.twilio_api import Call, sid
from tests.integration.twilio_support import PhoneDesk, phone_desk

pytestmark = pytest.mark.postgres

ALICE = "+12025550100"


@pytest.fixture
async def desks(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[PhoneDesk, PhoneDesk]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        phone_desk(tmp_path / "a", pg_url) as first,
        phone_desk(tmp_path / "b", pg_url) as second,
    ):
        yield first, second


def on(desk: PhoneDesk, call: Call) -> Call:
    """The same call, its next request sent to ``desk`` (another instance)."""
    return desk.phone.call(call.caller, call.call_sid)


async def test_a_hang_up_on_another_instance_leaves_a_call_back_ticket_with_the_choice(
    desks: tuple[PhoneDesk, PhoneDesk],
) -> None:
    a, b = desks
    call = a.phone.call(ALICE)
    await call.press(await call.start(), "1")  # the choice is made on instance A
    await on(b, call).hang_up()  # the call-status callback reaches instance B
    items = await b.tickets()
    assert len(items) == 1, items
    ticket = await b.ticket(str(items[0]["ref"]))
    assert ticket["subject"] == f"Call back {ALICE}: a broken device"
    assert ticket["category"] == "broken_device"
    assert ticket["kind"] == "incident"


async def test_a_choice_in_a_submenu_reaches_the_other_instance_too(
    desks: tuple[PhoneDesk, PhoneDesk],
) -> None:
    a, b = desks
    call = a.phone.call(ALICE)
    await call.press(await call.press(await call.start(), "3"), "2")  # Other -> a new laptop
    await on(b, call).hang_up()
    items = await a.tickets()
    assert len(items) == 1, items
    ticket = await a.ticket(str(items[0]["ref"]))
    assert ticket["category"] == "new_hardware"
    assert ticket["kind"] == "service_request"


async def test_a_call_put_through_on_one_instance_leaves_no_ticket_when_another_hears_it_end(
    desks: tuple[PhoneDesk, PhoneDesk],
) -> None:
    a, b = desks
    call = a.phone.call(ALICE)
    dial = await call.press(await call.press(await call.start(), "3"), "1")
    assert (await call.dial_ended(dial, "completed")).verbs == ["Hangup"]
    await on(b, call).hang_up()
    await on(a, call).hang_up()  # Twilio sends the status callback again
    assert await a.tickets() == []


async def test_a_status_callback_on_another_instance_waits_for_the_record_action(
    desks: tuple[PhoneDesk, PhoneDesk],
) -> None:
    a, b = desks
    call = a.phone.call(ALICE)
    record = await call.press(await call.start(), "1")
    hang_up = asyncio.create_task(on(b, call).hang_up())
    await asyncio.sleep(0.3)  # the status callback arrives first, as Twilio sometimes sends it
    await call.record(record, sid("RE"))
    assert (await hang_up).status == 200
    items = await a.tickets()
    assert len(items) == 1, items
    ticket = await a.ticket(str(items[0]["ref"]))
    assert ticket["subject"] == f"Phone call from {ALICE}: a broken device"
    assert len(ticket["contacts"]) == 1
