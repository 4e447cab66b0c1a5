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


async def test_a_withheld_text_is_kept_on_a_ticket_of_its_own_and_gets_no_answer(
    desk: PhoneDesk,
) -> None:
    first = await desk.phone.sms("anonymous", "my screen is black")
    second = await desk.phone.sms("anonymous", "the printer is on fire")
    for answer in (first, second):
        assert answer.status == 200
        assert list(answer.root) == []  # nobody to text back
    tickets = await desk.tickets()
    assert len(tickets) == 2
    requesters = {(await desk.ticket(t["ref"]))["requester"]["id"] for t in tickets}
    assert len(requesters) == 2  # withheld senders never share a requester


async def test_an_empty_text_is_kept_and_answered(desk: PhoneDesk) -> None:
    answer = await desk.phone.sms(ALICE, "   ")
    (ticket,) = await desk.tickets()
    assert answer.root.findtext("Message") == (
        f"Thanks, we have your message. Your ticket is {ticket['ref']}."
    )
    assert (await desk.ticket(ticket["ref"]))["contacts"][0]["text"] == "(The text was empty.)"


@pytest.mark.parametrize("sender", ["72345", "ACME", "client:alice"])
async def test_a_text_from_a_sender_id_that_is_no_number_is_kept_and_searchable(
    desk: PhoneDesk, sender: str
) -> None:
    answer = await desk.phone.sms(sender, "password reset please")
    assert answer.status == 200
    assert list(answer.root) == []  # a short code or a name cannot be texted back
    (ticket,) = await desk.tickets(requester=sender)
    shown = await desk.ticket(ticket["ref"])
    assert shown["requester"]["sender_id"] == sender
    assert shown["requester"]["phone"] is None
    assert shown["contacts"][0]["from"] == sender


async def test_a_sender_id_is_never_merged_with_a_phone_requester(desk: PhoneDesk) -> None:
    await desk.phone.sms(ALICE, "VPN broken")
    await desk.phone.sms("ACME", "invoice 42")
    await desk.phone.sms("ACME", "invoice 42 again")
    alice = (await desk.tickets(requester=ALICE))[0]
    acme = await desk.tickets(requester="ACME")
    assert len(acme) == 1  # one sender id is one conversation, like a number
    assert (await desk.ticket(acme[0]["ref"]))["requester"]["id"] != (
        await desk.ticket(alice["ref"])
    )["requester"]["id"]


async def test_a_possible_number_the_library_calls_invalid_is_a_phone(desk: PhoneDesk) -> None:
    answer = await desk.phone.sms("+447700900123", "hello from a new range")
    (ticket,) = await desk.tickets(requester="+447700900123")
    assert answer.root.findtext("Message", "").endswith(f"{ticket['ref']}.")
    assert (await desk.ticket(ticket["ref"]))["requester"]["phone"] == "+447700900123"


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
