"""``vendor_answer``: a vendor's new text, the parser reading only the head of a long mail."""

from __future__ import annotations

from router.vendor_mail import RELAY_PARSE_CHARS, vendor_answer

QUOTE = "\n\nOn Mon, 7 Dec 2026, Service Desk <servicedesk@example.com> wrote:\n> SAP is down\n"


def test_the_quote_of_our_forward_is_cut_off() -> None:
    assert vendor_answer("Fixed, try again." + QUOTE) == "Fixed, try again."


def test_a_long_answer_that_quotes_nothing_is_kept_whole() -> None:
    long = "The log says:\n" + "line of the vendor's analysis\n" * (RELAY_PARSE_CHARS // 20)
    assert len(long) > RELAY_PARSE_CHARS
    assert vendor_answer(long) == long


def test_a_long_answer_with_trailing_spaces_that_quotes_nothing_is_kept_whole() -> None:
    # The parser hands back its text with every line stripped, so "nothing was cut" cannot be
    # told by comparing texts: a line ending in a space made the head look cut, and everything
    # after RELAY_PARSE_CHARS was lost.
    long = "The log says: \n" + "line of the vendor's analysis \n" * (RELAY_PARSE_CHARS // 20)
    assert len(long) > RELAY_PARSE_CHARS
    assert vendor_answer(long) == long


def test_a_quote_in_the_head_of_a_long_mail_is_still_cut_off() -> None:
    long = "Fixed, try again." + QUOTE + "> older history\n" * (RELAY_PARSE_CHARS // 10)
    assert len(long) > RELAY_PARSE_CHARS
    assert vendor_answer(long) == "Fixed, try again."
