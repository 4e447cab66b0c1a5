"""The rule triage's word look-up: the substring check before the pattern changes no answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router.settings import TriageSettings
from router.triage import _word_pattern, _words_in

WORD_LISTS = (
    TriageSettings().service_request_words,
    TriageSettings().high_urgency_words,
    TriageSettings().low_urgency_words,
    ("No Rush", "FYI", "Access To"),  # configured in capitals: compared case-folded
)
PIECES = ("request", "access to", "urgent", "no rush", "fyi", "asap", "re", "quest", "ur")


@settings(max_examples=400)
@given(
    st.lists(
        st.one_of(st.sampled_from(PIECES), st.text(alphabet="ab xq-.\n_é", max_size=6)),
        max_size=12,
    ).map("".join),
    st.sampled_from(WORD_LISTS),
)
def test_words_found_are_the_patterns_first_whole_word_match(
    text: str, words: tuple[str, ...]
) -> None:
    folded = text.casefold()
    pattern = _word_pattern(words)
    assert pattern is not None
    match = pattern.search(folded)
    assert _words_in(folded, words) == (match.group(0) if match else None)
