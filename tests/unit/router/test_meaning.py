"""What the classifier reads of a contact, and the reader's bounds: it never raises, a contact
that waited past the timeout is not read, and a model that cannot be built leaves
classification off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import numpy as np

from normalizer.contact import Channel, Contact, Party, ThreadHints
from router.classifier import Guess
from router.meaning import (
    MAX_MEANING_CHARS,
    Meaning,
    MeaningReader,
    similarity,
    text_for_meaning,
)
from tests.unit.router.conftest import email

WHEN = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)

REPLY = """The VPN drops again every few minutes since this morning.

Best regards,
Anna Berg
Controlling | ACME GmbH
Tel +49 30 1234

On Mon, 1 Dec 2026 at 10:00, IT Service Desk <servicedesk@example.com> wrote:
> We opened SD-41 for you: printer jam on floor 3.
> Regards
"""


def test_email_text_is_subject_and_body_without_quote_or_signature() -> None:
    text = text_for_meaning(email(subject="VPN", text=REPLY))
    assert text == "VPN\nThe VPN drops again every few minutes since this morning."


def test_a_long_mail_is_read_by_its_first_lines_only() -> None:
    body = "The VPN drops every few minutes. " + "Here is the whole log. " * 2000
    text = text_for_meaning(email(subject="VPN", text=body))
    assert text.startswith("VPN\nThe VPN drops every few minutes.")
    assert len(text) == MAX_MEANING_CHARS  # CPU per contact stays bounded, whatever the size


def contact(channel: Channel, text: str) -> Contact:
    return Contact(
        channel=channel,
        external_id="CA1:transcription:TR1",
        sender=Party(phone="+14155550100"),
        received_at=WHEN,
        subject="Call from +14155550100" if channel is Channel.PHONE else "",
        text=text,
        thread=ThreadHints(call_id="CA1"),
    )


def test_a_call_is_read_by_its_transcript_only() -> None:
    recording = "Menu choice: 1\nRecording (9 s): https://x.example/r\n"
    said = contact(Channel.PHONE, recording + "Transcript: my screen is cracked")
    assert text_for_meaning(said) == "my screen is cracked"
    assert text_for_meaning(contact(Channel.PHONE, recording + "Transcript: (empty)")) == ""
    assert text_for_meaning(contact(Channel.PHONE, recording)) == ""


def test_a_chat_message_is_read_as_sent() -> None:
    dm = contact(Channel.SLACK, "wifi down in building B")
    assert text_for_meaning(dm) == "wifi down in building B"


class _Model:
    name = "fake"
    names = ("a", "b")
    training_size = 2

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.texts: list[str] = []  # the first word of each text read

    def read(self, text: str) -> tuple[Any, tuple[Guess, ...]]:
        self.texts.append(text.split()[0])
        if text.startswith("Warm-up"):  # the reader's own first reading at start
            return np.ones(4, dtype=np.float32), (Guess("a", 0.5), Guess("b", 0.5))
        if self.fail:
            raise RuntimeError("model broke")
        return np.ones(4, dtype=np.float32), (Guess("a", 0.9), Guess("b", 0.1))


async def started(model: Any, timeout_seconds: float = 0.5) -> MeaningReader:
    reader = MeaningReader(lambda: model, timeout_seconds)
    await reader.start()
    return reader


def read_now(reader: MeaningReader, contact: Contact) -> Meaning:
    reading = reader.reading(contact)
    reading.run()  # what the store's writer thread does before the contact's transaction
    return reading.meaning


async def test_a_contact_that_waited_past_the_timeout_is_not_read_and_says_so() -> None:
    model = _Model()
    reader = await started(model, timeout_seconds=0.05)
    reading = reader.reading(email(text="queued behind a backlog"))
    await asyncio.sleep(0.1)  # the writer was busy with earlier batches
    reading.run()
    assert reading.meaning.failure == "timeout" and reading.meaning.guesses == ()
    assert model.texts == ["Warm-up"]  # the start's own reading only: this one was skipped
    assert read_now(reader, email(text="in time")).guesses[0] == Guess("a", 0.9)


async def test_a_failing_model_is_an_answer_not_an_exception() -> None:
    reader = await started(_Model(fail=True))
    assert read_now(reader, email(text="boom")).failure == "error"


async def test_a_model_that_cannot_be_built_leaves_classification_off() -> None:
    def broken() -> Any:
        raise OSError("weights unreadable")

    reader = MeaningReader(broken)
    await reader.start()
    assert reader.model is None
    assert read_now(reader, email(text="x")).failure == "no-model"


async def test_a_reading_not_run_yet_has_no_guesses() -> None:
    reader = await started(_Model())
    assert reader.reading(email(text="hello")).meaning.guesses == ()


async def test_guesses_and_a_float16_vector_come_back() -> None:
    reader = await started(_Model())
    meaning = read_now(reader, email(text="hello"))
    assert meaning.guesses[0] == Guess("a", 0.9)
    assert len(meaning.vector) == 4 * 2
    assert similarity(meaning.vector, meaning.vector) == 1.0
    assert similarity(meaning.vector, b"") == 0.0
    assert Meaning().array().size == 0
