"""What a contact is about, read before its write transaction: :class:`MeaningReader`.

The router asks :meth:`MeaningReader.read` for every contact before it hands the contact to the
store's writer thread. The model runs on a worker thread of its own, never on the event loop and
never inside a write transaction, and only for ``timeout_seconds``: past that, or on any error,
the reader answers with a :class:`Meaning` that says why it has no guesses, and the contact goes
on with its rule-based category. It never raises.

The text read: an email's (or fax's) subject and body with quoted replies and signatures cut off
(``mail-parser-reply``); a call's transcript; the message of a Slack post, a text or an API call
(with the API's subject).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    """Builds the :class:`CategoryModel` once (``start``) and reads contacts with a time bound."""

    def __init__(self, build: Callable[[], CategoryModel], timeout_seconds: float = 0.5) -> None:
        self._build = build
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spoc-triage")
        self._model: CategoryModel | None = None

    @property
    def model(self) -> CategoryModel | None:
        return self._model

    async def start(self) -> None:
        """Load the model and fit the categories on the worker thread; a failure is logged and
        leaves classification off (contacts keep their rule-based category)."""
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(self._pool, self._build)
            # One reading first, so the first contact pays no import or first-call cost.
            await loop.run_in_executor(self._pool, _read, model, _WARM_UP)
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

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def read(self, contact: Contact) -> Meaning:
        model = self._model
        if model is None:
            return Meaning(failure="no-model")
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, _read, model, contact), self._timeout
            )
        except TimeoutError:
            log.warning("classification took over %.1f s: rule-based category kept", self._timeout)
            return Meaning(model=model.name, failure="timeout")
        except Exception:
            log.exception("classification failed: rule-based category kept")
            return Meaning(model=model.name, failure="error")


def _read(model: CategoryModel, contact: Contact) -> Meaning:
    """On the worker thread: the contact's text, then the model's reading of it."""
    text = text_for_meaning(contact)
    if not text:
        return Meaning(model=model.name, failure="no-text")
    vector, guesses = model.read(text)
    return Meaning(model.name, vector.astype(np.float16).tobytes(), guesses)
