"""``InflightBudget``: bytes received but not yet done with, shared by everything that charges it.

One budget bounds what many concurrent sessions or requests may hold at once: the SMTP channel
charges mail as it arrives (``[smtp] max_inflight_bytes``, :mod:`channels.smtp_data`), the HTTP
server charges request bodies before their handler reads them (``[server]
max_inflight_body_bytes``, :mod:`gateway.http_budget`). Each charger gives back exactly what it
took when its exchange ends, however it ends. It lives in the one event loop: no lock.
"""

from __future__ import annotations


class InflightBudget:
    """Bytes being received or processed, across every session or request charged to it."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight budget must be at least 1 byte, got {limit!r}")
        self.limit = limit
        self.used = 0
        self.refused = 0  # exchanges refused for want of budget so far

    def fits(self, size: int, *, keep: int = 0) -> bool:
        """Whether ``size`` more bytes fit and still leave ``keep`` bytes of the limit free."""
        return self.used + size <= self.limit - keep

    def reserve(self, size: int, *, keep: int = 0) -> bool:
        """Take ``size`` bytes if they fit (leaving ``keep`` free); False, nothing taken, if not."""
        if not self.fits(size, keep=keep):
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size
