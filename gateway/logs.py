"""What the gateway's log lines may carry, and how loud a client's mistake is.

Log lines quote what clients sent -- an SMTP command aiosmtpd did not recognise, a sender
address, a URL. A client that sends ``ESC [2J`` or a CR followed by a forged log line must not
clear an operator's terminal or write lines of its own: :class:`EscapeControlCharacters` writes
every non-printable character of a message as its Python escape (``\\x1b``, ``\\r``), on every
handler, for every logger.

With ``[server] log_format = "json"`` (:func:`configure_logging`) every record is one JSON object
on one line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and, for an exception,
``exc_info`` (the traceback as one string), plus any ``extra`` a call passes. The same filter runs
before the JSON formatter, and JSON escapes the line breaks of a traceback, so one record is
always one line.

A malformed HTTP request (an 8 KB URL, a header with bad bytes) is the client's error, answered
400 by aiohttp: :class:`ClientErrorLogger` makes it one INFO line instead of an ERROR with a
traceback. Anything else aiohttp reports stays an ERROR.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "LOG_FORMATS",
    "ClientErrorLogger",
    "EscapeControlCharacters",
    "TextFormatter",
    "configure_logging",
    "escape_controls",
    "install_filters",
    "json_formatter",
]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WORKERS_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(log_format: str = "text", *, process_ids: bool = False) -> None:
    """The process's logging for ``spoc serve``: INFO to stderr as text lines or JSON lines.
    ``process_ids`` puts the pid on every record (``spoc serve --workers N``: whose line it is).

    A root logger that has handlers already (an embedding program, a test) is left as it is,
    apart from the control-character filter, which every handler gets.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {LOG_FORMATS}, got {log_format!r}")
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        text_format = WORKERS_TEXT_FORMAT if process_ids else TEXT_FORMAT
        handler.setFormatter(
            json_formatter(process_ids) if log_format == "json" else TextFormatter(text_format)
        )
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    # aiosmtpd logs every sender and recipient at INFO: personal data, and noise.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # Lines quote what clients sent (aiosmtpd's "unrecognised: <command>"): escape controls.
    install_filters(root)


class TextFormatter(logging.Formatter):
    """``logging.Formatter``, with the date and time of each second formatted once.

    ``spoc serve`` writes a line per message; ``time.localtime`` and ``time.strftime`` were
    most of formatting one (~12 us a line here, ~4 us without). The lines are the same
    (``tests/unit/gateway/test_logs.py``).
    """

    _second: tuple[int, str] = (-1, "")  # a second and its text, swapped in as one object

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime(self.default_time_format, time.localtime(second))
            self._second = (second, text)
        msec_format = self.default_msec_format
        return msec_format % (text, record.msecs) if msec_format else text


def json_formatter(process_ids: bool = False) -> logging.Formatter:
    """One JSON object per record: time, level, logger, message, exc_info (a string), and
    with ``process_ids`` the pid as ``process``."""
    return JsonFormatter(
        "%(levelname)s %(process)d %(name)s %(message)s"
        if process_ids
        else "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def escape_controls(text: str) -> str:
    """``text`` with every non-printable character written as its escape; unchanged if none."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class EscapeControlCharacters(logging.Filter):
    """Rewrites each record's message with :func:`escape_controls`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as it would
            return True
        escaped = escape_controls(message)
        if escaped is not message:
            record.msg, record.args = escaped, None
        return True


def install_filters(logger: logging.Logger | None = None) -> None:
    """Put :class:`EscapeControlCharacters` on every handler of ``logger`` (the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())


class ClientErrorLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with a client's malformed request logged as one INFO line."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        code = getattr(exc, "code", 0) if isinstance(exc, HttpProcessingError) else 0
        if 400 <= code < 500:
            self.logger.info("refused a malformed HTTP request (%d): %s", code, _reason(exc))
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def _reason(exc: BaseException | None) -> str:
    message = getattr(exc, "message", "") or type(exc).__name__
    return str(message).splitlines()[0][:200]
