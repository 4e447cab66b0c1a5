"""What the classifier reads of a contact, and the reader's bounds: it never raises, it never
waits longer than its timeout, and a model that cannot be built leaves classification off."""

from __future__ import annotations

import threading
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

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.gate, self.fail = gate, fail

    def read(self, text: str) -> tuple[Any, tuple[Guess, ...]]:
        if text.startswith("Warm-up"):  # the reader's own first reading at start
            return np.ones(4, dtype=np.float32), (Guess("a", 0.5), Guess("b", 0.5))
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("model broke")
        return np.ones(4, dtype=np.float32), (Guess("a", 0.9), Guess("b", 0.1))


async def test_slow_classification_gives_up_at_the_timeout_and_says_so() -> None:
    gate = threading.Event()
    reader = MeaningReader(lambda: _Model(gate), timeout_seconds=0.05)  # type: ignore[arg-type, return-value]
    await reader.start()
    try:
        meaning = await reader.read(email(text="slow"))
    finally:
        gate.set()
        reader.close()
    assert meaning.failure == "timeout" and meaning.guesses == ()


async def test_a_failing_model_is_an_answer_not_an_exception() -> None:
    reader = MeaningReader(lambda: _Model(fail=True))  # type: ignore[arg-type, return-value]
    await reader.start()
    meaning = await reader.read(email(text="boom"))
    reader.close()
    assert meaning.failure == "error"


async def test_a_model_that_cannot_be_built_leaves_classification_off() -> None:
    def broken() -> Any:
        raise OSError("weights unreadable")

    reader = MeaningReader(broken)
    await reader.start()
    assert (await reader.read(email(text="x"))).failure == "no-model"
    reader.close()


async def test_guesses_and_a_float16_vector_come_back() -> None:
    reader = MeaningReader(lambda: _Model())  # type: ignore[arg-type, return-value]
    await reader.start()
    meaning = await reader.read(email(text="hello"))
    reader.close()
    assert meaning.guesses[0] == Guess("a", 0.9)
    assert len(meaning.vector) == 4 * 2
    assert similarity(meaning.vector, meaning.vector) == 1.0
    assert similarity(meaning.vector, b"") == 0.0
    assert Meaning().array().size == 0
