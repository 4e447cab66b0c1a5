"""Issue 3's phone story end to end: Twilio (played by ``TwilioPhone``) calls a whole gateway.

Every request is signed like Twilio signs it and goes to the ``action`` URL the gateway wrote in
its last TwiML; tickets are read back through the REST API. SQLite throughout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.twilio_api import TwilioPhone, TwiML, sid
from tests.integration.twilio_support import PhoneDesk, phone_desk

ALICE = "+12025550100"


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[PhoneDesk]:
    async with phone_desk(tmp_path, sqlite_url) as running:
        yield running


def only_ref(tickets: list[dict[str, object]]) -> str:
    assert len(tickets) == 1, tickets
    return str(tickets[0]["ref"])


async def test_the_greeting_is_a_speech_and_keys_menu_posting_to_an_absolute_url(
    desk: PhoneDesk,
) -> None:
    answer = await desk.phone.call(ALICE).start()
    gather = answer.find("Gather")
    assert gather.get("input") == "dtmf speech"
    assert gather.get("numDigits") == "1"
    assert gather.get("timeout") == "4"
    assert gather.get("hints") == "a broken device, a locked account, something else"
    assert gather.get("action", "").startswith(desk.harness.base_url + "/twilio/voice/menu?")
    assert "For a broken device, press 1." in answer.said
    assert answer.verbs == ["Gather", "Redirect"]


async def test_a_caller_who_presses_1_and_speaks_leaves_one_ticket_with_everything(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    menu = await call.start()
    record = await call.press(menu, "1")
    assert "recorded" in record.said  # the consent notice comes before <Record>
    assert record.verbs == ["Say", "Record", "Redirect"]
    element = record.find("Record")
    assert element.get("maxLength") == "90"
    assert element.get("transcribe") == "true"
    assert element.get("transcribeCallback", "").startswith(desk.harness.base_url)
    assert element.get("recordingStatusCallback", "").startswith(desk.harness.base_url)

    recording = sid("RE")
    goodbye = await call.record(record, recording)
    assert goodbye.verbs == ["Say", "Hangup"]
    ref = only_ref(await desk.tickets())
    assert f"Your ticket number is {' '.join(ref.replace('-', ''))}." in goodbye.said
    await call.recording_ready(record, recording)
    await call.transcribed(record, sid("TR"), recording, "My laptop screen is cracked.")
    await call.hang_up()

    ticket = await desk.ticket(ref)
    assert (ticket["channel"], ticket["category"], ticket["kind"]) == (
        "phone",
        "broken_device",
        "incident",
    )
    assert ticket["requester"]["phone"] == ALICE
    texts = [c["text"] for c in ticket["contacts"]]
    assert len(texts) == 2, texts
    assert "Menu choice: a broken device" in texts[0]
    assert f"Recordings/{recording}" in texts[0]
    assert "Transcript: My laptop screen is cracked." in texts[1]


async def test_twilio_retries_and_out_of_order_callbacks_make_one_ticket_and_contact_each(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    record = await call.press(await call.start(), "2")
    recording, transcription = sid("RE"), sid("TR")
    # The transcript and the recording callback arrive before the <Record> action …
    for _ in range(2):
        await call.transcribed(record, transcription, recording, "I am locked out.")
        await call.recording_ready(record, recording)
    # … and Twilio retries the action itself.
    first = await call.record(record, recording)
    again = await call.record(record, recording)
    assert first.said == again.said
    ref = only_ref(await desk.tickets())
    ticket = await desk.ticket(ref)
    assert ticket["category"] == "locked_account"
    ids = sorted(c["external_id"] for c in ticket["contacts"])
    assert ids == sorted(
        [f"{call.call_sid}:recording:{recording}", f"{call.call_sid}:transcription:{transcription}"]
    )


async def test_forged_unsigned_and_tampered_requests_get_403_and_store_nothing(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    record = await call.press(await call.start(), "1")
    url = record.url("Record")
    params = call.params(RecordingSid=sid("RE"), RecordingUrl="https://x", RecordingDuration="3")
    unsigned = await desk.phone.post(url, params, sign=False)
    forger = TwilioPhone(desk.harness.base_url, auth_token="not-the-token")
    try:
        forged = await forger.post(url, params)
    finally:
        await forger.close()
    tampered = await desk.phone.post(
        url.replace("p=1", "p=2"), params, signature=desk.phone.sign(url, params)
    )
    changed_form = await desk.phone.post(
        url, {**params, "From": "+12025550111"}, signature=desk.phone.sign(url, params)
    )
    for answer in (unsigned, forged, tampered, changed_form):
        assert answer.status == 403, answer.text
        assert answer.content_type == "text/plain"
    assert await desk.tickets() == []


async def test_a_multipart_or_unparseable_body_is_refused_like_a_forged_one(
    desk: PhoneDesk,
) -> None:
    data = aiohttp.FormData()
    data.add_field("CallSid", sid("CA"))
    data.add_field("upload", b"\x00binary", filename="x.bin")
    async with aiohttp.ClientSession() as http:
        url = desk.harness.base_url + "/twilio/voice"
        async with http.post(url, data=data) as multipart:
            assert multipart.status == 403 and multipart.content_type == "text/plain"
        async with http.post(
            url, data=b"%%%", headers={"Content-Type": "multipart/form-data; boundary=x"}
        ) as garbage:
            assert garbage.status == 403
    assert await desk.tickets() == []


async def test_a_signed_request_without_a_call_sid_is_a_400_not_a_500(desk: PhoneDesk) -> None:
    answer = await desk.phone.post("/twilio/voice/recorded?p=1", {"From": ALICE})
    assert answer.status == 400
    assert "CallSid" in answer.text
    bad_path = await desk.phone.post(
        "/twilio/voice/menu?p=xyz", {"CallSid": sid("CA"), "Digits": "1"}
    )
    assert bad_path.status == 400


async def test_invalid_keys_and_silence_reprompt_then_take_a_message_without_a_category(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    menu = await call.start()
    first = await call.press(menu, "7")
    assert first.said.startswith("Sorry, I didn't get that.")
    assert "n=1" in first.url("Gather")
    second = await call.stay_silent(first)
    assert "n=2" in second.url("Gather")
    fallback = await call.press(second, "*")
    assert "Record" in fallback.verbs
    await call.record(fallback, sid("RE"))
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["category"] != "broken_device"
    assert "Menu choice" not in ticket["contacts"][0]["text"]


async def test_a_spoken_answer_is_matched_to_an_option_label(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    record = await call.say(await call.start(), "My account is locked")
    assert "p=2" in record.url("Record")
    await call.record(record, sid("RE"))
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["category"] == "locked_account"
    assert ticket["kind"] == "service_request"


async def test_a_submenu_and_a_dial_that_nobody_answers_falls_back_to_voicemail(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    submenu = await call.press(await call.start(), "3")
    assert "Other requests. For talking to someone now, press 1." in submenu.said
    dial = await call.press(submenu, "1")
    assert dial.find("Dial").text == "+12025550123"
    voicemail = await call.dial_ended(dial, "no-answer")
    assert "Nobody could take your call" in voicemail.said
    await call.record(voicemail, sid("RE"))
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["category"] == "live_call"


async def test_a_call_that_was_put_through_leaves_no_ticket(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    dial = await call.press(await call.press(await call.start(), "3"), "1")
    done = await call.dial_ended(dial, "completed")
    assert done.verbs == ["Hangup"]
    await call.hang_up()
    assert await desk.tickets() == []


async def test_hanging_up_before_recording_leaves_a_call_back_ticket_with_the_choice(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    await call.press(await call.start(), "1")  # hears the notice, hangs up
    await call.hang_up()
    await call.hang_up()  # Twilio retries the status callback
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["subject"] == f"Call back {ALICE}: a broken device"
    assert ticket["category"] == "broken_device"
    assert len(ticket["contacts"]) == 1
    assert f"Please call back {ALICE}." in ticket["contacts"][0]["text"]


async def test_hanging_up_during_the_menu_leaves_a_call_back_ticket_with_the_number(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    await call.start()
    await call.hang_up()
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert "hung up during the menu" in ticket["contacts"][0]["text"]


async def test_a_status_callback_before_the_record_action_still_makes_one_message_ticket(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call(ALICE)
    record = await call.press(await call.start(), "1")
    hang_up = asyncio.create_task(call.hang_up())
    await asyncio.sleep(0.05)  # let the status callback arrive first, as Twilio sometimes does
    await call.record(record, sid("RE"))
    assert (await hang_up).status == 200
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["subject"] == f"Phone call from {ALICE}: a broken device"
    assert len(ticket["contacts"]) == 1


async def test_a_hang_up_after_the_message_adds_nothing(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    record = await call.press(await call.start(), "1")
    await call.record(record, sid("RE"))
    await call.hang_up()
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert len(ticket["contacts"]) == 1


async def test_a_caller_with_an_open_ticket_can_press_9_to_add_to_it(desk: PhoneDesk) -> None:
    first = desk.phone.call(ALICE)
    await first.record(await first.press(await first.start(), "1"), sid("RE"))
    ref = only_ref(await desk.tickets())
    spoken = " ".join(ref.replace("-", ""))

    second = desk.phone.call(ALICE)
    menu = await second.start()
    assert f"You have an open ticket, {spoken}. To add to it, press 9." in menu.said
    record = await second.press(menu, "9")
    goodbye = await second.record(record, sid("RE"))
    assert f"Your message was added to ticket {spoken}." in goodbye.said
    assert only_ref(await desk.tickets()) == ref
    assert len((await desk.ticket(ref))["contacts"]) == 2


async def test_an_offered_ref_with_fullwidth_digits_is_refused_not_resolved(
    desk: PhoneDesk,
) -> None:
    first = desk.phone.call(ALICE)
    await first.record(await first.press(await first.start(), "1"), sid("RE"))
    ref = only_ref(await desk.tickets())
    assert ref == "SD-1"

    second = desk.phone.call(ALICE)
    menu = await second.start()
    gather = menu.url("Gather")
    assert "t=SD-1" in gather
    forged = gather.replace("t=SD-1", "t=SD-%EF%BC%91")  # SD- and a fullwidth 1
    answer = await desk.phone.post(forged, second.params(Digits="9"))
    assert answer.status == 400, answer.text
    assert len((await desk.ticket(ref))["contacts"]) == 1


async def test_a_stranger_is_not_offered_someone_elses_ticket(desk: PhoneDesk) -> None:
    first = desk.phone.call(ALICE)
    await first.record(await first.press(await first.start(), "1"), sid("RE"))
    menu = await desk.phone.call("+12025550177").start()
    assert "open ticket" not in menu.said


async def test_a_known_number_is_the_same_requester_as_their_email(
    tmp_path: Path, sqlite_url: str
) -> None:
    # The number is on file: a directory sync put it there through the API, which it may
    # vouch for with [api] link_identities = true (a web form's phone would not be linked).
    directory_sync = "[api]\nenabled = true\nlink_identities = true\n"
    async with phone_desk(tmp_path, sqlite_url, ivr_extra=directory_sync) as desk:
        await _known_number_call(desk)


async def _known_number_call(desk: PhoneDesk) -> None:
    status, created = await desk.harness.api(
        "POST",
        "/api/contacts",
        {"from": {"email": "alice@example.org", "phone": ALICE}, "text": "Hello"},
    )
    assert status == 201, created
    call = desk.phone.call("(202) 555-0100")  # the same number, written nationally
    menu = await call.start()
    spoken = " ".join(created["ref"].replace("-", ""))
    assert f"You have an open ticket, {spoken}." in menu.said
    await call.record(await call.press(menu, "1"), sid("RE"))
    tickets = await desk.tickets(channel="phone")
    requester = (await desk.ticket(only_ref(tickets)))["requester"]
    assert requester["id"] == created["requester"]["id"]
    assert requester["email"] == "alice@example.org"


async def test_a_withheld_caller_gets_the_menu_and_a_ticket_of_their_own(
    desk: PhoneDesk,
) -> None:
    refs = []
    for _ in range(2):
        call = desk.phone.call("anonymous")
        menu = await call.start()
        assert "open ticket" not in menu.said
        goodbye = await call.record(await call.press(menu, "1"), sid("RE"))
        assert "Your ticket number is" in goodbye.said
    refs = [t["ref"] for t in await desk.tickets()]
    assert len(refs) == 2
    ticket = await desk.ticket(refs[0])
    assert ticket["requester"]["phone"] is None
    assert "withheld" in ticket["subject"]


async def test_a_withheld_caller_who_hangs_up_in_the_menu_leaves_nothing(
    desk: PhoneDesk,
) -> None:
    call = desk.phone.call("anonymous")
    await call.start()
    await call.hang_up()
    assert await desk.tickets() == []


async def test_every_answer_is_well_formed_twiml(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    record = await call.press(await call.start(), "1")
    answers: list[TwiML] = [
        await call.recording_ready(record, "RE1"),
        await call.transcribed(record, "TR1", "RE1", ""),
        await call.hang_up(),
        await desk.phone.sms(ALICE, "hello"),
    ]
    for answer in answers:
        assert answer.root.tag == "Response"


async def test_after_hours_callers_hear_the_announcement_and_leave_a_voicemail(
    tmp_path: Path, sqlite_url: str
) -> None:
    closed = '\n[ivr.hours]\ntimezone = "Europe/Berlin"\ndays = []\n'
    async with phone_desk(tmp_path, sqlite_url, ivr_extra=closed) as desk:
        call = desk.phone.call(ALICE)
        answer = await call.start()
        assert "Gather" not in answer.verbs
        assert "closed right now" in answer.said
        assert "ah=1" in answer.url("Record")
        await call.record(answer, sid("RE"))
        ticket = await desk.ticket(only_ref(await desk.tickets()))
        assert ticket["subject"] == f"After-hours voicemail from {ALICE}"


async def test_without_an_auth_token_the_channel_does_not_start_and_says_why(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.serve")
    async with phone_desk(tmp_path, sqlite_url, token=None) as desk:
        answer = await desk.phone.call(ALICE).start()
        assert answer.status == 404
    assert "SPOC_TWILIO_AUTH_TOKEN is not set" in caplog.text


async def test_a_whole_call_with_retries_works_on_every_database(
    tmp_path: Path, db_url: str
) -> None:
    async with phone_desk(tmp_path, db_url) as desk:
        call = desk.phone.call(ALICE)
        record = await call.press(await call.start(), "2")
        recording, transcription = sid("RE"), sid("TR")
        for _ in range(2):
            await call.transcribed(record, transcription, recording, "Locked out")
            await call.record(record, recording)
            await call.recording_ready(record, recording)
        await call.hang_up()
        ref = only_ref(await desk.tickets())
        again = desk.phone.call(ALICE)
        assert "To add to it, press 9." in (await again.start()).said
        ticket = await desk.ticket(ref)
        assert ticket["category"] == "locked_account"
        assert len(ticket["contacts"]) == 2


async def test_hanging_up_in_a_submenu_keeps_the_first_choice(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    await call.press(await call.start(), "3")
    await call.hang_up()
    ticket = await desk.ticket(only_ref(await desk.tickets()))
    assert ticket["subject"] == f"Call back {ALICE}: something else"
    assert ticket["category"] == "other"
