"""Each call's progress kept in this process: :class:`normalizer.calls.CallJournal` for a Twilio
channel run without a database (tests, an embedded channel).

``spoc serve`` does not use it: the gateway hands the channel ``router.calls.CallJournalStore``,
so a call-status callback that reaches another instance than the menu steps still finds the
caller's choice. This one is bounded (oldest calls are dropped first).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from normalizer.calls import CallProgress

MAX_CALLS = 10_000
MAX_AGE_SECONDS = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class _Entry:
    progress: CallProgress
    at: float


class MemoryCallJournal:
    def __init__(self, max_calls: int = MAX_CALLS, max_age_seconds: float = MAX_AGE_SECONDS):
        self._calls: OrderedDict[str, _Entry] = OrderedDict()
        self._max_calls = max_calls
        self._max_age = max_age_seconds
        self._finished: dict[str, asyncio.Event] = {}

    async def get(self, call_sid: str) -> CallProgress | None:
        entry = self._calls.get(call_sid)
        return entry.progress if entry is not None else None

    async def chose(self, call_sid: str, progress: CallProgress) -> None:
        old = self._calls.get(call_sid)
        finished = old is not None and old.progress.finished
        self._put(call_sid, replace(progress, finished=finished))

    async def finish(self, call_sid: str) -> None:
        old = self._calls.get(call_sid)
        self._put(call_sid, replace(old.progress if old else CallProgress(), finished=True))
        if call_sid in self._finished:
            self._finished[call_sid].set()

    async def wait_finished(self, call_sid: str, timeout: float) -> bool:  # noqa: ASYNC109
        entry = self._calls.get(call_sid)
        if entry is not None and entry.progress.finished:
            return True
        event = self._finished.setdefault(call_sid, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        finally:
            self._finished.pop(call_sid, None)
        return True

    def _put(self, call_sid: str, progress: CallProgress) -> None:
        now = time.monotonic()
        self._calls.pop(call_sid, None)
        self._calls[call_sid] = _Entry(progress, now)
        while len(self._calls) > self._max_calls:
            self._calls.popitem(last=False)
        while self._calls:
            oldest = next(iter(self._calls.values()))
            if now - oldest.at <= self._max_age:
                break
            self._calls.popitem(last=False)
