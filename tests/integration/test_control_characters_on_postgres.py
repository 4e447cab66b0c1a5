"""NUL cannot be stored in a PostgreSQL text column: a contact carrying one would fail to commit
forever (Twilio and Slack retry into the same error). The normalizer strips C0 controls (but tab
and newline) for every channel; here texts and call transcripts prove it on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.twilio_api import sid
from tests.integration.twilio_support import PhoneDesk, phone_desk

pytestmark = pytest.mark.postgres

ALICE = "+12025550100"
HOSTILE = "screen\x00 is\x1b[2J black\r\nsince\tmonday\x07"
CLEAN = "screen is[2J black\nsince\tmonday"


@pytest.fixture
async def desk(tmp_path: Path, pg_url: str) -> AsyncIterator[PhoneDesk]:
    async with phone_desk(tmp_path, pg_url) as running:
        yield running


async def test_a_text_with_nul_and_escapes_is_stored_clean(desk: PhoneDesk) -> None:
    answer = await desk.phone.sms(ALICE, HOSTILE)
    (ticket,) = await desk.tickets()
    assert answer.root.findtext("Message", "").endswith(f"{ticket['ref']}.")
    stored = await desk.ticket(ticket["ref"])
    assert stored["contacts"][0]["text"] == CLEAN
    assert "\x00" not in stored["subject"] and "\x1b" not in stored["subject"]


async def test_a_transcript_with_nul_is_stored_clean(desk: PhoneDesk) -> None:
    call = desk.phone.call(ALICE)
    record = await call.press(await call.start(), "1")
    recording = sid("RE")
    await call.record(record, recording)
    await call.transcribed(record, sid("TR"), recording, HOSTILE)
    await call.hang_up()
    (ticket,) = await desk.tickets()
    texts = [c["text"] for c in (await desk.ticket(ticket["ref"]))["contacts"]]
    assert any(text.endswith(f"Transcript: {CLEAN}") for text in texts), texts
