"""to_e164: phone numbers as E.164, or None when withheld or invalid."""

from __future__ import annotations

import pytest

from normalizer.phone import CallerId, read_caller_id, to_e164


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


def test_a_number_of_an_impossible_length_gives_none() -> None:
    # "+15550100" (the contract's illustrative number) is too short for a NANP number.
    assert to_e164("+15550100") is None


def test_a_possible_number_from_a_range_the_library_does_not_know_is_kept() -> None:
    # Ofcom's drama range: the right length for the UK, but not assigned, so not "valid".
    assert to_e164("+447700900123") == "+447700900123"


@pytest.mark.parametrize(
    "raw",
    ["anonymous", " Restricted ", "UNKNOWN", "+266696687", "sip:+266696687@trunk", "", None],
)
def test_only_the_withheld_markers_are_read_as_withheld(raw: str | None) -> None:
    caller = read_caller_id(raw)
    assert caller.withheld
    assert caller == CallerId()


@pytest.mark.parametrize(
    ("raw", "sender_id"),
    [
        ("72345", "72345"),  # a short code
        ("ACME", "ACME"),  # an alphanumeric sender id
        ("client:alice", "client:alice"),  # Twilio Client
        ("sip:bob@pbx.example.com", "sip:bob@pbx.example.com"),
        ("unknown-printer", "unknown-printer"),  # a marker word inside a name is no marker
        ("+1555", "+1555"),
        ("ACME\x1b[2J\x00", "ACME [2J"),
    ],
)
def test_a_caller_id_that_is_no_number_is_kept_as_sent(raw: str, sender_id: str) -> None:
    assert read_caller_id(raw) == CallerId(sender_id=sender_id)


def test_a_possible_number_is_read_as_a_phone() -> None:
    assert read_caller_id("(415) 555-2671") == CallerId(phone="+14155552671")
    assert read_caller_id("sip:+14155552671@trunk;user=phone") == CallerId(phone="+14155552671")
