"""Log lines never carry a client's control characters raw."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.logs import (
    TEXT_FORMAT,
    WORKERS_TEXT_FORMAT,
    EscapeControlCharacters,
    TextFormatter,
    configure_logging,
    escape_controls,
    install_filters,
    json_formatter,
)


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


def json_lines(emit: Callable[[logging.Logger], None]) -> list[dict[str, Any]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    logger = logging.Logger("gateway.test")
    logger.addHandler(handler)
    install_filters(logger)
    emit(logger)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_logs_are_one_object_per_line_with_time_level_logger_and_message() -> None:
    [line] = json_lines(lambda log: log.info("contact %s stored", "SD-42"))
    assert line["level"] == "INFO" and line["logger"] == "gateway.test"
    assert line["message"] == "contact SD-42 stored"
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)


def test_a_json_log_line_carries_the_traceback_as_one_string() -> None:
    def fail(log: logging.Logger) -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("handler failed")

    [line] = json_lines(fail)
    assert isinstance(line["exc_info"], str)
    assert "Traceback" in line["exc_info"] and "RuntimeError: boom" in line["exc_info"]


def test_a_client_cannot_forge_a_json_log_line_or_smuggle_controls_into_one() -> None:
    lines = json_lines(lambda log: log.warning("unrecognised: %s", 'X\r\n{"level": "INFO"}\x1b[2J'))
    assert len(lines) == 1
    assert lines[0]["message"] == 'unrecognised: X\\r\\n{"level": "INFO"}\\x1b[2J'


def test_log_format_is_text_or_json_and_anything_else_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("xml")


@settings(max_examples=300)
@given(
    st.lists(
        st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([TEXT_FORMAT, WORKERS_TEXT_FORMAT]),
)
def test_text_lines_are_the_standard_formatters_lines(created: list[float], fmt: str) -> None:
    """The text formatter formats each second's date once; every line, in any order of times
    (a second again, another, back), is what ``logging.Formatter`` writes."""
    ours, standard = TextFormatter(fmt), logging.Formatter(fmt)
    for at in [*created, *created]:
        record = logging.makeLogRecord({"msg": "SMTP %r: %d bytes", "args": (("::1", 25), 9)})
        record.created, record.msecs = at, (at - int(at)) * 1000
        assert ours.format(record) == standard.format(record)
