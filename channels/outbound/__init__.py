"""Outbound transports: deliver what the router's outbox holds (acks, replies, forwards).

The gateway's dispatcher claims outbox rows and hands each payload to the transport for its
kind, with the row's idempotency key (``send(payload, idempotency_key=...)``, the same key on
every retry of one row: an HTTP transport sends it as a header so the receiver can drop a
repeat). A transport either returns (delivered) or raises :class:`DeliveryError`, saying
whether a retry could help and, when the receiver said so, after how long. Nothing here is
called from inside a router transaction.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


class DeliveryError(Exception):
    """A payload could not be delivered.

    ``permanent`` is true when retrying the same payload cannot succeed (the receiving server
    said 5xx, an API said 4xx other than 408/429, the payload is malformed): the dispatcher
    dead-letters the row after a few attempts instead of retrying for its whole lifetime.
    Everything else (SMTP 4xx, HTTP 408/429/5xx, refused or dropped connections, timeouts) is
    temporary. ``retry_after`` is the receiver's ``Retry-After`` in seconds, when it sent one
    (:func:`retry_after_seconds` parses the header).
    """

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after  # seconds


def permanent_http_status(status: int) -> bool:
    """True for an HTTP answer a retry of the same request cannot change: 4xx but 408
    (Request Timeout) and 429 (Too Many Requests)."""
    return 400 <= status < 500 and status not in (408, 429)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """An HTTP ``Retry-After`` (RFC 9110 10.2.3) as seconds from ``now``: delay-seconds
    (``"120"``) or an HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``; a date in the past is
    0). None when absent or unreadable: the caller's own backoff applies then."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: RFC 5322 says UTC
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


__all__ = ["DeliveryError", "permanent_http_status", "retry_after_seconds"]
