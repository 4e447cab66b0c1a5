"""What a contact is about, read before its write transaction: :class:`MeaningReader`.

The router asks :meth:`MeaningReader.reading` for every contact and hands it to the store with
the contact's write (``Store.write(fn, before=reading.run)``): the store runs it before the
contact's transaction begins -- on its prepare thread while the batch ahead commits, or on the
writer thread when its batch starts -- and the transaction then uses the answer. So the model
runs neither on the event loop nor inside a write transaction, and a contact costs no hop to a
thread of its own: that hop and the GIL hand-offs around it cost more CPU than the reading
(0.23 ms for the 800 characters read; issue 12, docs/benchmarks.md "2f-meaning"). A contact that
waited longer than ``timeout_seconds`` for its batch (a backlog) is not read; on that or any
error the :class:`Meaning` says why it has no guesses, and the contact goes on with its
rule-based category. It never raises.

The text read: an email's (or fax's) subject and body with quoted replies and signatures cut off
(``mail-parser-reply``); a call's transcript; the message of a Slack post, a text or an API call
(with the API's subject).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from normalizer.contact import Channel, Contact, Party
from normalizer.reply_text import newest_reply
from router.classifier import CategoryModel, Guess, Vectors

log = logging.getLogger(__name__)

_TRANSCRIPT = "Transcript: "
# The meaning of a message is in its first lines; reading more costs CPU (about 0.5 ms per 1,000
# characters to strip replies, 0.3 ms to embed) and adds nothing. The parser reads a little more
# than the model: a quote or signature that starts later is cut off by the model's limit anyway.
MAX_MEANING_CHARS = 800  # what the model reads of the text
MAX_BODY_CHARS = 1_200  # what the reply parser reads of a body


@dataclass(frozen=True, slots=True)
class Meaning:
    """The model's reading of one contact: its vector (float16 bytes) and ranked guesses, or
    ``failure`` saying why there are none (``no-text``, ``timeout``, ``error``, ``no-model``)."""

    model: str = ""
    vector: bytes = b""
    guesses: tuple[Guess, ...] = ()
    failure: str | None = None

    def array(self) -> Vectors:
        return np.frombuffer(self.vector, dtype=np.float16).astype(np.float32)


def similarity(a: bytes, b: bytes) -> float:
    """Cosine of two stored vectors (0 when either is missing or they differ in size)."""
    x = np.frombuffer(a, dtype=np.float16).astype(np.float32)
    y = np.frombuffer(b, dtype=np.float16).astype(np.float32)
    if x.size == 0 or x.shape != y.shape:
        return 0.0
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / norm if norm else 0.0


def _strip_reply(body: str) -> str:
    return newest_reply(body[:MAX_BODY_CHARS])


def text_for_meaning(contact: Contact) -> str:
    """The words the classifier reads for this contact ("" when there are none)."""
    if contact.channel in (Channel.EMAIL, Channel.FAX):
        text = f"{contact.subject}\n{_strip_reply(contact.text)}"
    elif contact.channel is Channel.PHONE:
        lines = [ln for ln in contact.text.splitlines() if ln.startswith(_TRANSCRIPT)]
        text = "\n".join(ln.removeprefix(_TRANSCRIPT) for ln in lines).strip()
        text = "" if text == "(empty)" else text
    else:
        text = f"{contact.subject}\n{contact.text[:MAX_MEANING_CHARS]}"
    return text.strip()[:MAX_MEANING_CHARS]


_WARM_UP = Contact(
    channel=Channel.EMAIL,
    external_id="warm-up",
    sender=Party(email="warm-up@spoc.invalid"),
    received_at=datetime(2026, 1, 1, tzinfo=UTC),
    subject="Warm-up",
    text="The printer is jammed.\n\nRegards,\nA\n\nOn Mon, A <a@b.example> wrote:\n> hello",
)


class MeaningReader:
    """Builds the :class:`CategoryModel` once (``start``), then gives each contact a
    :class:`Reading` for the store to run before the contact's transaction."""

    def __init__(self, build: Callable[[], CategoryModel], timeout_seconds: float = 0.5) -> None:
        self._build = build
        self._timeout = timeout_seconds
        self._model: CategoryModel | None = None

    @property
    def model(self) -> CategoryModel | None:
        return self._model

    async def start(self) -> None:
        """Load the model and fit the categories on a worker thread; a failure is logged and
        leaves classification off (contacts keep their rule-based category)."""
        try:
            model = await asyncio.to_thread(self._build)
            # One reading first, so the first contact pays no import or first-call cost.
            await asyncio.to_thread(_read, model, _WARM_UP)
            self._model = model
        except Exception:
            log.exception("the triage classifier could not be built: categories stay rule-based")
            return
        log.info(
            "triage classifier %s ready: %d categories, %d training texts",
            self._model.name,
            len(self._model.names),
            self._model.training_size,
        )

    def reading(self, contact: Contact) -> Reading:
        """The contact's reading, to be run (once) before its write transaction."""
        return Reading(self._model, contact, time.monotonic() + self._timeout)


class Reading:
    """One contact's reading by the model. :meth:`run` fills :attr:`meaning`; until then (and
    for good when the model is off) it says why there are no guesses."""

    __slots__ = ("_contact", "_deadline", "_model", "meaning")

    def __init__(self, model: CategoryModel | None, contact: Contact, deadline: float) -> None:
        self._model = model
        self._contact = contact
        self._deadline = deadline  # time.monotonic(): past it, the contact is not read
        self.meaning = (
            Meaning(failure="no-model") if model is None else Meaning(model.name, failure="timeout")
        )

    @property
    def has_model(self) -> bool:
        """False when the model could not be built: :meth:`run` would do nothing."""
        return self._model is not None

    def run(self) -> None:
        """Read the contact, unless it waited past the reader's timeout (the rule-based category
        is kept then) or there is no model. Never raises."""
        model = self._model
        if model is None:
            return
        late = time.monotonic() - self._deadline
        if late > 0:
            log.warning(
                "classification started %.2f s after its bound: rule-based category kept", late
            )
            return
        try:
            self.meaning = _read(model, self._contact)
        except Exception:
            log.exception("classification failed: rule-based category kept")
            self.meaning = Meaning(model=model.name, failure="error")


def _read(model: CategoryModel, contact: Contact) -> Meaning:
    """The contact's text, then the model's reading of it."""
    text = text_for_meaning(contact)
    if not text:
        return Meaning(model=model.name, failure="no-text")
    vector, guesses = model.read(text)
    return Meaning(model.name, vector.astype(np.float16).tobytes(), guesses)
