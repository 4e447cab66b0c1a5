"""Texts to the desk's number, agent replies through the (fake) Twilio Messages API, and
recordings downloaded with the account credentials. A whole gateway on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, DESK_NUMBER, WAV, sid
from tests.integration.twilio_support import PhoneDesk, phone_desk

ALICE = "+12025550100"
BOB = "+12025550111"


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[PhoneDesk]:
    async with phone_desk(tmp_path, sqlite_url) as running:
        yield running


async def test_a_text_opens_a_ticket_and_the_reply_names_it(desk: PhoneDesk) -> None:
    answer = await desk.phone.sms(ALICE, "My VPN does not connect")
    tickets = await desk.tickets()
    assert len(tickets) == 1
    ref = tickets[0]["ref"]
    assert answer.root.findtext("Message") == f"Thanks, we have your message. Your ticket is {ref}."
    ticket = await desk.ticket(ref)
    assert (ticket["channel"], ticket["subject"]) == ("sms", "SMS: My VPN does not connect")
    assert ticket["requester"]["phone"] == ALICE


async def test_a_second_text_joins_the_senders_open_sms_ticket(desk: PhoneDesk) -> None:
    await desk.phone.sms(ALICE, "My VPN does not connect")
    answer = await desk.phone.sms(ALICE, "It says error 809")
    await desk.phone.sms(BOB, "Printer jammed")
    tickets = await desk.tickets()
    assert len(tickets) == 2
    alice = next(t for t in tickets if "VPN" in t["subject"])
    assert (
        answer.root.findtext("Message")
        == f"Thanks, we added your message to ticket {alice['ref']}."
    )
    assert len((await desk.ticket(alice["ref"]))["contacts"]) == 2


async def test_a_retried_text_is_stored_once(desk: PhoneDesk) -> None:
    message_sid = sid("SM")
    for _ in range(3):
        answer = await desk.phone.sms(ALICE, "Hello", message_sid=message_sid)
        assert answer.status == 200
    tickets = await desk.tickets()
    assert len(tickets) == 1
    assert len((await desk.ticket(tickets[0]["ref"]))["contacts"]) == 1


async def test_a_withheld_or_empty_text_gets_an_empty_response_and_no_ticket(
    desk: PhoneDesk,
) -> None:
    withheld = await desk.phone.sms("anonymous", "hello")
    empty = await desk.phone.sms(ALICE, "   ")
    for answer in (withheld, empty):
        assert answer.status == 200
        assert list(answer.root) == []
    assert await desk.tickets() == []


async def test_opt_out_keywords_are_left_to_twilio_and_make_no_ticket(desk: PhoneDesk) -> None:
    for word in ("STOP", "start "):
        answer = await desk.phone.sms(ALICE, word)
        assert list(answer.root) == []
    assert await desk.tickets() == []


async def test_an_unsigned_text_is_refused(desk: PhoneDesk) -> None:
    answer = await desk.phone.post(
        "/twilio/sms", {"MessageSid": sid("SM"), "From": ALICE}, sign=False
    )
    assert answer.status == 403
    assert await desk.tickets() == []


async def test_an_agent_reply_to_an_sms_ticket_goes_out_through_the_messages_api(
    desk: PhoneDesk,
) -> None:
    await desk.phone.sms(ALICE, "My VPN does not connect")
    ref = (await desk.tickets())[0]["ref"]
    status, _ = await desk.harness.api("POST", f"/api/tickets/{ref}/reply", {"text": "Try now."})
    assert status == 202
    await desk.harness.settle()
    assert [(m["To"], m["From"], m["Body"]) for m in desk.api.messages] == [
        (ALICE, DESK_NUMBER, f"{ref}: Try now.")
    ]


async def test_an_agent_reply_to_a_phone_ticket_is_texted_to_the_caller(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    await call.record(await call.press(await call.start(), "1"), sid("RE"))
    ref = (await desk.tickets())[0]["ref"]
    status, _ = await desk.harness.api("POST", f"/api/tickets/{ref}/reply", {"text": "On my way"})
    assert status == 202
    await desk.harness.settle()
    assert [m["To"] for m in desk.api.messages] == [ALICE]


async def test_a_downloaded_recording_is_stored_once_as_an_attachment(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with phone_desk(tmp_path, sqlite_url, download=True) as desk:
        recording = sid("RE")
        desk.api.recordings[recording] = WAV
        call = desk.phone.call(ALICE)
        record = await call.press(await call.start(), "1")
        url = desk.api.recording_url(recording)
        await call.record(record, recording, url=url)
        for _ in range(2):  # Twilio retries the status callback
            await call.recording_ready(record, recording, url=url)
        ticket = await desk.ticket((await desk.tickets())[0]["ref"])
        attachments = [a for c in ticket["contacts"] for a in c["attachments"]]
        assert len(ticket["contacts"]) == 2
        assert len(attachments) == 1
        assert attachments[0]["size"] == len(WAV)
        assert attachments[0]["filename"].startswith(recording)


async def test_recordings_are_never_fetched_from_another_host_with_the_credentials(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with phone_desk(tmp_path, sqlite_url, download=True) as desk:
        call = desk.phone.call(ALICE)
        record = await call.press(await call.start(), "1")
        await call.recording_ready(record, "RE1", url="https://evil.example/steal")
        ticket = await desk.ticket((await desk.tickets())[0]["ref"])
        assert ticket["contacts"][0]["attachments"] == []
        assert "https://evil.example/steal" in ticket["contacts"][0]["text"]
        assert desk.api.downloads == []


async def test_the_fake_api_refuses_wrong_credentials() -> None:
    # Guards the fake itself: a sender with a wrong token must be told 401, not accepted.
    from channels.outbound import DeliveryError
    from channels.outbound.sms import TwilioSMSSender, TwilioSMSSettings
    from tests.fakes.twilio_api import FakeTwilioAPI

    api = FakeTwilioAPI()
    await api.start()
    try:
        sender = TwilioSMSSender(
            TwilioSMSSettings(ACCOUNT_SID, "wrong", DESK_NUMBER, api_base_url=api.base_url)
        )
        with pytest.raises(DeliveryError) as caught:
            await sender.send({"to": ALICE, "text": "x", "ticket_ref": "SD-1"})
        assert caught.value.permanent
        good = TwilioSMSSender(
            TwilioSMSSettings(ACCOUNT_SID, AUTH_TOKEN, DESK_NUMBER, api_base_url=api.base_url)
        )
        assert (await good.send({"to": ALICE, "text": "x", "ticket_ref": "SD-1"})).startswith("SM")
        await asyncio.sleep(0)
    finally:
        await api.stop()
