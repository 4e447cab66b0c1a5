"""Triage by meaning: an offline text embedding and a small linear model over it.

:class:`Embedder` is the one interface a model has to offer (texts in, unit vectors out), so the
model can be swapped. :class:`WordLlamaEmbedder` is the shipped one: WordLlama's
``l2_supercat`` 256-dimension token embeddings, whose weights and tokenizer ship inside the
``wordllama`` wheel. It is loaded from the package folder only -- never from a hub or a cache --
and its weights are checked against a pinned sha256, so nothing is downloaded at run time. A
text's vector is what ``WordLlamaInference.embed`` gives (the average of its tokens' rows, here
scaled to length 1), computed here from the same matrix and tokenizer: the tokenizer runs a
piece at a time with a cache (:mod:`router.pieces`), and no padded batch is built.

:class:`CategoryModel` is a logistic regression (scikit-learn) over those vectors, fitted once at
start from every category's ``description`` and ``examples`` in config plus the labelled
training set shipped in ``router/data/triage_train.jsonl`` (only the rows whose category the
config defines). ``read(text)`` gives the text's vector and the categories ranked by probability.

Nothing here touches the database or the event loop: :mod:`router.meaning` has the store run it
before a contact's write transaction (on its prepare or writer thread).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from router.settings import Category

log = logging.getLogger(__name__)

Vectors = NDArray[np.float32]

# wordllama 0.4.0.post1: l2_supercat_256.safetensors (the only weights in the wheel).
WORDLLAMA_WEIGHTS = "weights/l2_supercat_256.safetensors"
WORDLLAMA_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
WORDLLAMA_SHA256 = "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"
MAX_TEXT_CHARS = 4000  # longer texts are cut: classification time stays bounded


class ModelUnavailable(RuntimeError):
    """The embedding model cannot be loaded (package missing, weights altered)."""


class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


@dataclass(frozen=True, slots=True)
class Guess:
    category: str
    score: float  # probability, 0..1


@dataclass(frozen=True, slots=True)
class Labelled:
    text: str
    category: str
    style: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WordLlamaEmbedder:
    """WordLlama ``l2_supercat`` (256 dimensions), loaded from the installed wheel only."""

    name = "wordllama-l2_supercat-256"

    def __init__(self, package_dir: Path | None = None, sha256: str = WORDLLAMA_SHA256) -> None:
        # Belt and braces: nothing below may reach a hub, whatever a library decides to do.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # One text at a time needs no Rayon pool: its spinning workers cost CPU on a busy desk.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            import wordllama
            from safetensors import safe_open
            from tokenizers import Tokenizer

            from router.pieces import PieceTokenizer
        except ImportError as exc:
            raise ModelUnavailable(f"wordllama is not installed: {exc}") from exc
        finally:  # wordllama.inference calls logging.basicConfig() on import: undo it
            root.handlers[:] = handlers
            root.setLevel(level)
        folder = package_dir or Path(wordllama.__file__).parent
        weights, tokenizer = folder / WORDLLAMA_WEIGHTS, folder / WORDLLAMA_TOKENIZER
        if not weights.is_file() or not tokenizer.is_file():
            raise ModelUnavailable(f"wordllama weights or tokenizer missing under {folder}")
        found = _sha256(weights)
        if found != sha256:
            raise ModelUnavailable(f"{weights}: sha256 {found} is not the pinned {sha256}")
        with safe_open(str(weights), framework="np") as f:
            matrix = f.get_tensor("embedding.weight")
        # Widened to float32 as WordLlamaInference does: the sums below are then its sums.
        self._matrix: Vectors = np.ascontiguousarray(matrix, dtype=np.float32)
        self._tokens = PieceTokenizer(Tokenizer.from_file(str(tokenizer)))

    def embed(self, texts: Sequence[str]) -> Vectors:
        """WordLlamaInference's average of the token vectors, scaled to length 1 (the average
        and the sum point the same way, so the sum is scaled). One text at a time: a padded
        batch only adds work, and the router reads one contact at a time."""
        unit: Vectors = np.zeros((len(texts), self._matrix.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = self._tokens.ids(text[:MAX_TEXT_CHARS])
            if not ids:
                continue
            total = self._matrix.take(ids, axis=0).sum(axis=0)
            norm = float(np.sqrt(total @ total))
            if norm > 0:
                unit[row] = total / norm
        return unit


@functools.cache
def wordllama_embedder() -> WordLlamaEmbedder:
    """The process's one WordLlama model (about 33 MB of float32 weights)."""
    return WordLlamaEmbedder()


def labelled_set(path: Path | None = None) -> tuple[Labelled, ...]:
    """The labelled training set (JSON lines: ``text``, ``category``, ``style``)."""
    if path is None:
        text = resources.files("router").joinpath("data/triage_train.jsonl").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return tuple(Labelled(r["text"], r["category"], r.get("style", "")) for r in rows)


class CategoryModel:
    """Logistic regression over embeddings, fitted once from config and the labelled set."""

    def __init__(
        self,
        embedder: Embedder,
        categories: Sequence[Category],
        labelled: Sequence[Labelled] = (),
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        names = [c.name for c in categories]
        if len(names) < 2:
            raise ModelUnavailable("a classifier needs at least two categories")
        texts: list[str] = []
        labels: list[int] = []
        for index, category in enumerate(categories):
            for text in (category.description, *category.examples):
                texts.append(text)
                labels.append(index)
        known = {n: i for i, n in enumerate(names)}
        for row in labelled:
            if row.category in known:
                texts.append(row.text)
                labels.append(known[row.category])
        self.embedder = embedder
        self.names = tuple(names)
        self.training_size = len(texts)
        fitted: Any = LogisticRegression(C=10.0, max_iter=3000)
        fitted.fit(embedder.embed(texts), np.asarray(labels))
        self._columns = [self.names[int(c)] for c in fitted.classes_]
        # Multinomial: p = softmax(x W^T + b). Applied with numpy on the hot path, because
        # predict_proba's input validation costs ten times the arithmetic.
        # Two categories: one logit z for the second, and sigmoid(z) = softmax([0, z]).
        weights, bias = np.asarray(fitted.coef_), np.asarray(fitted.intercept_)
        if weights.shape[0] == 1:
            weights = np.vstack([np.zeros_like(weights), weights])
            bias = np.concatenate([np.zeros_like(bias), bias])
        self._weights: Vectors = weights.astype(np.float32)
        self._bias: Vectors = bias.astype(np.float32)
        self.fitted = fitted

    @property
    def name(self) -> str:
        return f"{self.embedder.name}+logreg"

    def read(self, text: str) -> tuple[Vectors, tuple[Guess, ...]]:
        """The text's vector and every category with its probability, best first."""
        vector = self.embedder.embed([text])
        return vector[0], self.rank(vector)[0]

    def rank(self, vectors: Vectors) -> list[tuple[Guess, ...]]:
        logits = vectors @ self._weights.T + self._bias
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        probabilities = odds / odds.sum(axis=1, keepdims=True)
        ranked = []
        for row in probabilities:
            order = np.argsort(-row)
            ranked.append(tuple(Guess(self._columns[i], round(float(row[i]), 4)) for i in order))
        return ranked


@functools.lru_cache(maxsize=4)
def category_model(categories: tuple[Category, ...]) -> CategoryModel:
    """The shipped model for these categories, fitted once per process and reused."""
    return CategoryModel(wordllama_embedder(), categories, labelled_set())
