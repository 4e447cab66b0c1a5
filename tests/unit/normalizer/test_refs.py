from __future__ import annotations

import pytest

from normalizer.refs import format_ref, is_ref, parse_ref, subject_refs

LOOKALIKES = [
    "SD-\uff11",  # fullwidth digit one
    "SD-\u0967",  # Devanagari digit one
    "SD-\u0661",  # Arabic-Indic digit one
    "SD-4\uff12",
    "\uff33\uff24-1",  # fullwidth S D
    "\u212a-1",  # Kelvin sign, which case-insensitive [A-Z] takes for a K
]


def test_an_ascii_ref_of_this_desk_gives_its_ticket_id() -> None:
    assert parse_ref("SD", "SD-42") == 42
    assert parse_ref("SD", " sd-42 ") == 42
    assert parse_ref("SD", format_ref("SD", 7)) == 7


@pytest.mark.parametrize("ref", LOOKALIKES)
def test_refs_with_non_ascii_digits_or_letters_match_no_ticket(ref: str) -> None:
    assert parse_ref("SD", ref) is None
    assert parse_ref("K", ref) is None
    assert not is_ref(ref)


@pytest.mark.parametrize("ref", ["XX-1", "SD-", "SD-1-2", "SD-1x", "SD-" + "9" * 19, "SD 1"])
def test_other_desks_refs_and_malformed_ones_match_nothing(ref: str) -> None:
    assert parse_ref("SD", ref) is None


def test_a_ref_is_the_whole_value_not_a_part_of_it() -> None:
    assert is_ref("SD-42")
    assert not is_ref("SD-42; drop")
    assert not is_ref("SD-42\n")


def test_subject_tags_are_found_upper_cased_once_each_in_order() -> None:
    assert subject_refs("Re: [sd-7] and [SD-42] again [SD-7]") == ("SD-7", "SD-42")


@pytest.mark.parametrize("ref", LOOKALIKES)
def test_a_subject_tag_with_lookalike_characters_is_no_tag(ref: str) -> None:
    assert subject_refs(f"Re: [{ref}] printer") == ()
