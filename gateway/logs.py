"""What the gateway's log lines may carry, and how loud a client's mistake is.

Log lines quote what clients sent -- an SMTP command aiosmtpd did not recognise, a sender
address, a URL. A client that sends ``ESC [2J`` or a CR followed by a forged log line must not
clear an operator's terminal or write lines of its own: :class:`EscapeControlCharacters` writes
every non-printable character of a message as its Python escape (``\\x1b``, ``\\r``), on every
handler, for every logger.

A malformed HTTP request (an 8 KB URL, a header with bad bytes) is the client's error, answered
400 by aiohttp: :class:`ClientErrorLogger` makes it one INFO line instead of an ERROR with a
traceback. Anything else aiohttp reports stays an ERROR.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ClientErrorLogger", "EscapeControlCharacters", "escape_controls", "install_filters"]


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
