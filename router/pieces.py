"""WordLlama's tokenizer a piece at a time, with a cache: the same token ids for less CPU.

The shipped tokenizer (Llama 2's BPE, 32,000 tokens; ``tokenizers``) has no pre-tokenizer. It
merges a whole text as one sequence and builds an ``Encoding`` (token strings, offsets, masks)
that the embedding never reads: ~0.26 ms for the 800 characters the classifier reads, the
biggest part of a classification.

:class:`PieceTokenizer` gives the same ids for less. The normaliser turns spaces into ``▁`` and
puts one in front. No token of the vocabulary has a ``▁`` after another character (a token is a
run of ``▁`` or an optional ``▁`` and then none), so no BPE merge ever joins the end of one
piece and the start of the next, where a piece is a run of ``▁`` and the characters up to the
next ``▁``. Each piece is merged alone by the same BPE model (``Tokenizer.model.tokenize``), so
the ids are those of the whole text. Words recur, so short pieces' ids are cached.

A text holding one of the added tokens (``<unk>``, ``<s>``, ``</s>``: the library splits
those out before normalising), or a tokenizer whose set-up is not the one this relies on, takes
the library's own ``encode``. ``tests/unit/router/test_pieces.py`` compares both on generated
text and on the mail corpus.
"""

from __future__ import annotations

import functools
import json
import re
from itertools import chain
from typing import Any

from tokenizers import Tokenizer

SPACE = "▁"  # U+2581, SentencePiece's space
# A run of spaces and the word after it (a normalised text starts with a space).
_PIECE = re.compile(f"{SPACE}+[^{SPACE}]*")
_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": SPACE},
        {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
    ],
}
CACHED_PIECE_CHARS = 40  # longer pieces (URLs, base64) rarely recur: merged, not cached
CACHE_PIECES = 16_384  # a few MB at most


def splits_at_spaces(tokenizer: Tokenizer) -> bool:
    """Whether cutting a text before each run of ``▁`` gives the ids of the whole text: the
    normaliser above, no pre-tokenizer, no truncation or padding, a BPE model, and no token
    with ``▁`` after another character."""
    config: dict[str, Any] = json.loads(tokenizer.to_str())
    model = config.get("model") or {}
    if config.get("normalizer") != _NORMALIZER or config.get("pre_tokenizer") is not None:
        return False
    if config.get("truncation") is not None or config.get("padding") is not None:
        return False  # ``encode`` would cut or pad the ids; pieces do neither
    if model.get("type") != "BPE" or model.get("dropout") is not None:
        return False
    # These act on a whole "word" (the whole text here): a piece would see them differently.
    if model.get("ignore_merges") or model.get("end_of_word_suffix"):
        return False
    if model.get("continuing_subword_prefix"):
        return False
    vocabulary: dict[str, int] = model.get("vocab") or {}
    return not any(SPACE in token.lstrip(SPACE) for token in vocabulary)


class PieceTokenizer:
    """``ids(text)`` equals ``tokenizer.encode(text, add_special_tokens=False).ids``."""

    def __init__(self, tokenizer: Tokenizer, cache_size: int = CACHE_PIECES) -> None:
        self._tokenizer = tokenizer
        self._model = tokenizer.model
        self._exact = splits_at_spaces(tokenizer)
        self._added = tuple(t.content for t in tokenizer.get_added_tokens_decoder().values())
        self._cached = functools.lru_cache(maxsize=cache_size)(self._merge)

    def ids(self, text: str) -> list[int]:
        if not self._exact or any(token in text for token in self._added):
            return list(self._tokenizer.encode(text, add_special_tokens=False).ids)
        if not text:  # the normaliser prepends nothing to an empty text
            return []
        pieces = _PIECE.findall(SPACE + text.replace(" ", SPACE))
        if max(map(len, pieces)) <= CACHED_PIECE_CHARS:
            return list(chain.from_iterable(map(self._cached, pieces)))
        ids: list[int] = []
        for piece in pieces:
            short = len(piece) <= CACHED_PIECE_CHARS
            ids.extend(self._cached(piece) if short else self._merge(piece))
        return ids

    def _merge(self, piece: str) -> tuple[int, ...]:
        return tuple(token.id for token in self._model.tokenize(piece))
