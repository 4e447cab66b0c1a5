"""Log lines never carry a client's control characters raw."""

from __future__ import annotations

import io
import logging

import pytest

from gateway.logs import EscapeControlCharacters, escape_controls, install_filters


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcode", "plain text, ünïcode"),
        ("\x1b[2J", "\\x1b[2J"),
        ("RCPT\r\n2026-12-01 INFO forged line", "RCPT\\r\\n2026-12-01 INFO forged line"),
        ("nul\x00 bell\x07 del\x7f", "nul\\x00 bell\\x07 del\\x7f"),
        ("line\u2028separator", "line\\u2028separator"),
    ],
)
def test_non_printable_characters_are_written_as_escapes(text: str, shown: str) -> None:
    assert escape_controls(text) == shown


def test_a_handler_with_the_filter_escapes_arguments_of_any_logger() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.Logger("test-root")
    root.addHandler(handler)
    install_filters(root)
    install_filters(root)  # idempotent
    assert sum(isinstance(f, EscapeControlCharacters) for f in handler.filters) == 1
    root.warning("%r unrecognised: %s", ("1.2.3.4", 5), "\x1b[2JHELO\rINFO all fine")
    assert out.getvalue() == "('1.2.3.4', 5) unrecognised: \\x1b[2JHELO\\rINFO all fine\n"


def test_a_record_with_a_bad_format_string_is_still_passed_on() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert EscapeControlCharacters().filter(record) is True
