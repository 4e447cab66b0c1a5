"""to_e164: phone numbers as E.164, or None when withheld or invalid."""

from __future__ import annotations

import pytest

from normalizer.phone import to_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155552671", "+14155552671"),
        ("(415) 555-2671", "+14155552671"),
        ("415.555.2671", "+14155552671"),
        (" +44 20 7183 8750 ", "+442071838750"),
        ("tel:+1-415-555-2671", "+14155552671"),
        ("sip:+14155552671@trunk.example.com;user=phone", "+14155552671"),
    ],
)
def test_valid_numbers_become_e164(raw: str, expected: str) -> None:
    assert to_e164(raw) == expected


def test_national_numbers_are_read_in_the_default_region() -> None:
    assert to_e164("030 901820", default_region="DE") == "+4930901820"
    assert to_e164("020 7183 8750", default_region="GB") == "+442071838750"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "Restricted",
        "UNKNOWN",
        "private",
        "+266696687",
        "+7378742833",
        "+8656696",
        "+2562533",
        "+86282452253",
        "garbage",
        "12",
        "+999123456789",
        "+1555",
        "sip:alice@example.com",
        "9" * 300,
    ],
)
def test_withheld_invalid_and_garbage_numbers_give_none(raw: str | None) -> None:
    assert to_e164(raw) is None


def test_a_number_that_is_possible_but_not_assigned_gives_none() -> None:
    # "+15550100" (the contract's illustrative number) is too short to be a real NANP number.
    assert to_e164("+15550100") is None
