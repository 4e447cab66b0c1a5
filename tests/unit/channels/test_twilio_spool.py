"""The degraded-mode spool: records survive a round trip, oldest first, bad files set aside."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.twilio.ingest import IngestSettings, TwilioIngest
from channels.twilio.journal import MemoryCallJournal
from channels.twilio.spool import Spool, decode, encode
from normalizer.calls import CallProgress
from normalizer.contact import Contact
from normalizer.intake import ContactRejectedError, IntakeResult, TemporaryIntakeError
from normalizer.telephony import CallEvent, SmsMessage

AT = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def test_call_and_sms_records_come_back_equal_and_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    call = CallEvent("CA1", "recording", AT, caller="+12025550100", step_id="RE1", choice="x")
    sms = SmsMessage("SM1", "+12025550100", AT, "hi", ("https://m/1",))
    spool.put(call)
    spool.put(sms)
    pending = spool.pending()
    assert [spool.load(p) for p in pending] == [call, sms]
    assert not list((tmp_path / "spool").glob(".*.tmp"))


def test_an_empty_or_missing_spool_has_nothing_pending(tmp_path: Path) -> None:
    assert Spool(tmp_path / "nowhere").pending() == []


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"type": "fax", "record": {"received_at": AT.isoformat()}},
        {"type": "sms", "record": {"received_at": "2026-11-22T15:00:00"}},
        {"type": "call", "record": {"received_at": AT.isoformat(), "bogus": 1}},
    ],
)
def test_a_file_that_is_not_a_record_is_refused(tmp_path: Path, data: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        decode(data)


def test_a_rejected_record_is_moved_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    path = spool.put(SmsMessage("SM1", "+12025550100", AT, "hi"))
    spool.reject(path, "refused")
    assert spool.pending() == []
    assert (tmp_path / "rejected" / path.name).exists()


def test_encode_names_the_record_type() -> None:
    assert encode(SmsMessage("SM1", "+1", AT))["type"] == "sms"


async def test_the_journal_keeps_the_newest_calls_only() -> None:
    journal = MemoryCallJournal(max_calls=2)
    await journal.chose("CA1", CallProgress(path="1"))
    await journal.chose("CA2", CallProgress())
    await journal.finish("CA3")
    assert await journal.get("CA1") is None
    finished = await journal.get("CA3")
    assert finished is not None and finished.finished


class _Intake:
    """Fails while ``down``; refuses texts saying ``refuse``; records what it got."""

    def __init__(self) -> None:
        self.down = True
        self.got: list[str] = []

    async def submit(self, contact: Contact) -> IntakeResult:
        if self.down:
            raise TemporaryIntakeError("down")
        if contact.text == "refuse":
            raise ContactRejectedError("no", field="text")
        self.got.append(contact.external_id)
        return IntakeResult("SD-1", 1, len(self.got), True, False, "new")


async def test_replay_keeps_everything_while_the_intake_is_down_then_sends_it_in_order(
    tmp_path: Path,
) -> None:
    intake = _Intake()
    ingest = TwilioIngest(intake, IngestSettings(spool_dir=tmp_path))
    assert await ingest.sms(SmsMessage("SM1", "+12025550100", AT, "one")) is None
    assert await ingest.sms(SmsMessage("SM2", "+12025550100", AT, "refuse")) is None
    assert await ingest.sms(SmsMessage("SM3", "+12025550100", AT, "three")) is None
    assert await ingest.replay() == 0
    assert len(ingest.spool.pending()) == 3
    intake.down = False
    assert await ingest.replay() == 2
    assert intake.got == ["SM1", "SM3"]
    assert ingest.spool.pending() == []
    assert len(list((tmp_path / "rejected").iterdir())) == 1


async def test_a_record_another_worker_replayed_meanwhile_is_skipped_not_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = _Intake()
    intake.down = False
    ingest = TwilioIngest(intake, IngestSettings(spool_dir=tmp_path))
    ingest.spool.put(SmsMessage("SM1", "+12025550100", AT, "one"))
    other_worker = Spool(tmp_path)
    read = ingest.spool.load

    def load_after_the_other_worker(path: Path) -> object:
        other_worker.remove(path)  # it replayed the record between our listing and our read
        return read(path)

    monkeypatch.setattr(ingest.spool, "load", load_after_the_other_worker)

    assert await ingest.replay() == 0
    assert intake.got == []
    assert not (tmp_path / "rejected").exists()
