"""The piece-at-a-time tokenizer gives exactly the library's token ids, and the embedder exactly
WordLlama's vectors: on generated text (spaces in runs, ``▁`` itself, added tokens, any
Unicode), on every mail of the corpus and on the labelled sets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import wordllama
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from tokenizers import Tokenizer, normalizers
from wordllama.inference import WordLlamaInference

from router.classifier import WORDLLAMA_TOKENIZER, WORDLLAMA_WEIGHTS, wordllama_embedder
from router.pieces import CACHED_PIECE_CHARS, PieceTokenizer, splits_at_spaces

ROOT = Path(__file__).resolve().parents[3]
CORPUS = [
    *sorted((ROOT.parent / "shared" / "corpus" / "sisimai" / "maildir").rglob("*.eml")),
    *sorted((ROOT / "tests" / "fixtures" / "email").glob("*.eml")),
]
LABELLED = [ROOT / "router" / "data" / "triage_train.jsonl", ROOT / "tests/data/triage/test.jsonl"]
FOLDER = Path(wordllama.__file__).parent


def library_tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(FOLDER / WORDLLAMA_TOKENIZER))


LIBRARY = library_tokenizer()
PIECES = PieceTokenizer(library_tokenizer())


def library_ids(text: str) -> list[int]:
    return list(LIBRARY.encode(text, add_special_tokens=False).ids)


def corpus_texts() -> Iterator[str]:
    for path in CORPUS:
        yield path.read_bytes().decode("utf-8", errors="replace")
    for path in LABELLED:
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                yield json.loads(line)["text"]


# Words, runs of spaces, the normalised space itself, line breaks, the added tokens, any text.
_PARTS = st.one_of(
    st.sampled_from(["printer", "VPN", "can't", "Grüße", "é", "日本語", "🙂", "x" * 60]),
    st.sampled_from([" ", "  ", "   ", "▁", " ▁ ", "\n", "\r\n", "\t", "<s>", "</s>", "<unk>"]),
    st.text(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PARTS, max_size=40).map("".join))
def test_pieces_give_the_library_s_ids_on_generated_text(text: str) -> None:
    assert PIECES.ids(text) == library_ids(text)


def test_pieces_give_the_library_s_ids_on_the_corpus_and_the_labelled_sets() -> None:
    texts = list(corpus_texts())
    assert len(texts) > 500, "the corpus is missing (../shared/corpus)"
    for text in texts:
        assert PIECES.ids(text[:4000]) == library_ids(text[:4000]), text[:80]


def test_words_are_merged_once_and_long_pieces_are_not_cached() -> None:
    pieces = PieceTokenizer(library_tokenizer())
    long_word = "a" * (CACHED_PIECE_CHARS + 1)
    assert pieces.ids(f"printer jammed {long_word}") == library_ids(f"printer jammed {long_word}")
    assert pieces.ids("printer jammed again") == library_ids("printer jammed again")
    cached = pieces._cached.cache_info()  # what the cache holds is the point
    assert (cached.hits, cached.currsize) == (2, 3)  # ▁printer, ▁jammed, ▁again


def test_a_tokenizer_set_up_otherwise_takes_the_library_s_path() -> None:
    changed = library_tokenizer()
    changed.normalizer = normalizers.Sequence([normalizers.Lowercase(), changed.normalizer])
    assert splits_at_spaces(library_tokenizer())
    assert not splits_at_spaces(changed)
    suffixed = json.loads(library_tokenizer().to_str())
    suffixed["model"]["end_of_word_suffix"] = "</w>"
    assert not splits_at_spaces(Tokenizer.from_str(json.dumps(suffixed)))
    text = "The  Printer\nis JAMMED"
    assert PieceTokenizer(changed).ids(text) == changed.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def reference() -> WordLlamaInference:
    with safe_open(str(FOLDER / WORDLLAMA_WEIGHTS), framework="np") as f:
        matrix = f.get_tensor("embedding.weight")
    return WordLlamaInference(matrix, library_tokenizer())


def test_vectors_are_wordllama_s_vectors_scaled_to_length_one(
    reference: WordLlamaInference,
) -> None:
    texts = [*[t[:4000] for t in corpus_texts()][::3], "", " ", "<s>"]
    ours = wordllama_embedder().embed(texts)
    theirs = reference.embed(texts, norm=False, batch_size=16)
    norms = np.linalg.norm(theirs, axis=1, keepdims=True)
    expected = np.divide(theirs, norms, out=np.zeros_like(theirs), where=norms > 0)
    assert ours.dtype == np.float32
    assert np.abs(ours - expected).max() < 1e-6


def test_a_tokenizer_that_truncates_or_pads_takes_the_library_s_path() -> None:
    """``encode`` cuts a text to the truncation length and pads it to a fixed one; pieces do
    neither, so such a tokenizer must not be read a piece at a time."""
    text = "the printer on the third floor is jammed again and the queue is stuck"
    truncating = library_tokenizer()
    truncating.enable_truncation(max_length=5)
    padding = library_tokenizer()
    padding.enable_padding(length=40)
    for tokenizer in (truncating, padding):
        assert not splits_at_spaces(tokenizer)
        want = tokenizer.encode(text, add_special_tokens=False).ids
        assert PieceTokenizer(tokenizer).ids(text) == want
