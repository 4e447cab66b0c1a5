"""``clean_text``'s byte-table path for ASCII text removes what the character table removes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from normalizer.text import _TEXT_CONTROLS, clean_text


def by_character_table(value: str) -> str:
    """``clean_text`` as it was: line ends, then every character looked up in the table."""
    return value.replace("\r\n", "\n").replace("\r", "\n").translate(_TEXT_CONTROLS)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_text_is_cleaned_as_the_character_table_cleans_it(value: str) -> None:
    assert clean_text(value) == by_character_table(value)


@given(st.text(alphabet=st.characters(max_codepoint=0x2100)))
def test_any_text_is_cleaned_as_the_character_table_cleans_it(value: str) -> None:
    assert clean_text(value) == by_character_table(value)


def test_every_control_but_tab_and_newline_goes_from_ascii_text() -> None:
    every = "".join(map(chr, range(0x80)))
    assert clean_text(every) == "\t\n\n" + "".join(map(chr, range(0x20, 0x7F)))  # CR: a newline
