"""Recording downloads against the fake Twilio API on 127.0.0.1: redirects, query strings and
storage that is too slow for Twilio's 15-second webhook timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.twilio.ingest import IngestSettings, TwilioIngest
from normalizer.contact import Contact
from normalizer.intake import IntakeResult
from normalizer.telephony import CallEvent
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, WAV, ConnectionTrap, FakeTwilioAPI, sid
from tests.integration.twilio_support import phone_desk


class Intake:
    def __init__(self) -> None:
        self.contacts: list[Contact] = []

    async def submit(self, contact: Contact) -> IntakeResult:
        self.contacts.append(contact)
        return IntakeResult("SD-1", 1, 1, created=True, duplicate=False, thread_reason="new")


@pytest.fixture
async def api() -> AsyncIterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI()
    await fake.start()
    try:
        yield fake
    finally:
        if fake.held is not None:
            fake.held.set()
        await fake.stop()


def ingest(
    api: FakeTwilioAPI, tmp_path: Path, timeout_seconds: float = 10.0
) -> tuple[TwilioIngest, Intake]:
    intake = Intake()
    settings = IngestSettings(
        spool_dir=tmp_path,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        api_base_url=api.base_url,
        download_recordings=True,
        download_timeout_seconds=timeout_seconds,
    )
    return TwilioIngest(intake, settings), intake


def recording_file(recording: str, url: str) -> CallEvent:
    return CallEvent(
        call_sid=sid("CA"),
        step="recording-file",
        received_at=datetime.now(UTC),
        caller="+12025550100",
        step_id=recording,
        recording_url=url,
        recording_seconds=12,
    )


async def test_a_redirect_to_another_host_is_not_followed_and_the_url_is_kept(
    api: FakeTwilioAPI, tmp_path: Path
) -> None:
    trap = ConnectionTrap()  # 127.0.0.2: loopback, but not the configured API host
    await trap.start()
    try:
        recording = sid("RE")
        api.redirects[recording] = trap.url()
        desk, intake = ingest(api, tmp_path)
        await desk.call(recording_file(recording, api.recording_url(recording)))
    finally:
        await trap.stop()
    assert trap.connections == 0
    [contact] = intake.contacts
    assert contact.attachments == () and api.recording_url(recording) in contact.text


async def test_a_redirect_back_to_the_api_host_is_followed_without_the_credentials(
    api: FakeTwilioAPI, tmp_path: Path
) -> None:
    recording = sid("RE")
    api.recordings[recording] = WAV
    api.redirects[recording] = api.storage_url(recording)
    desk, intake = ingest(api, tmp_path)
    await desk.call(recording_file(recording, api.recording_url(recording)))
    [contact] = intake.contacts
    assert [a.data for a in contact.attachments] == [WAV]
    assert api.downloads == [recording, recording]  # the API, then its storage


async def test_a_recording_url_with_a_query_string_is_downloaded(
    api: FakeTwilioAPI, tmp_path: Path
) -> None:
    recording = sid("RE")
    api.recordings[recording] = WAV
    desk, intake = ingest(api, tmp_path)
    await desk.call(recording_file(recording, api.recording_url(recording) + "?Download=true"))
    [contact] = intake.contacts
    assert [a.data for a in contact.attachments] == [WAV]
    assert api.queries == ["Download=true"]


async def test_a_download_that_does_not_finish_in_time_keeps_the_url(
    api: FakeTwilioAPI, tmp_path: Path
) -> None:
    recording = sid("RE")
    api.recordings[recording] = WAV
    api.held = asyncio.Event()  # storage answers only once this is set: never, in time
    desk, intake = ingest(api, tmp_path, timeout_seconds=0.2)
    await desk.call(recording_file(recording, api.recording_url(recording)))
    assert not api.held.is_set()
    [contact] = intake.contacts
    assert contact.attachments == () and api.recording_url(recording) in contact.text


async def test_slow_recording_storage_still_answers_twilio_in_time_and_opens_the_ticket(
    tmp_path: Path, sqlite_url: str
) -> None:
    # The phone gives up after 15 s, as Twilio does; the download must give up before that.
    async with phone_desk(tmp_path, sqlite_url, download=True) as desk:
        recording = sid("RE")
        desk.api.recordings[recording] = WAV
        desk.api.held = asyncio.Event()
        try:
            call = desk.phone.call("+12025550100")
            record = await call.press(await call.start(), "1")
            url = desk.api.recording_url(recording)
            answer = await call.recording_ready(record, recording, url=url)
            assert answer.status == 200 and not desk.api.held.is_set()
        finally:
            desk.api.held.set()
        ticket = await desk.ticket((await desk.tickets())[0]["ref"])
        assert [a for c in ticket["contacts"] for a in c["attachments"]] == []
        assert url in ticket["contacts"][0]["text"]
