"""What each call in progress chose, kept in memory for the call-status callback.

Twilio's "call status changes" callback tells us that a call ended, but not where in the menu
the caller was. When a caller hangs up before leaving a message, the channel makes a "call
back" ticket from this journal: their number and their choice. The journal is bounded (oldest
calls are dropped first) and is per process: behind several instances a call-back ticket may
lack the choice, never the number.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

MAX_CALLS = 10_000
MAX_AGE_SECONDS = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class CallProgress:
    path: str | None = None  # the menu path chosen; None: no choice yet
    offered_ref: str | None = None  # the caller chose to add to this ticket
    after_hours: bool = False
    recording: bool = False  # the caller reached <Record>: its action request may be under way
    finished: bool = False  # a message was taken or the call was put through
    at: float = 0.0


class CallJournal:
    def __init__(self, max_calls: int = MAX_CALLS, max_age_seconds: float = MAX_AGE_SECONDS):
        self._calls: OrderedDict[str, CallProgress] = OrderedDict()
        self._max_calls = max_calls
        self._max_age = max_age_seconds
        self._finished: dict[str, asyncio.Event] = {}

    def get(self, call_sid: str) -> CallProgress | None:
        return self._calls.get(call_sid)

    def update(self, call_sid: str, **changes: object) -> None:
        now = time.monotonic()
        entry = self._calls.pop(call_sid, None) or CallProgress()
        self._calls[call_sid] = replace(entry, at=now, **changes)  # type: ignore[arg-type]
        if changes.get("finished") and call_sid in self._finished:
            self._finished[call_sid].set()
        while len(self._calls) > self._max_calls:
            self._calls.popitem(last=False)
        while self._calls:
            oldest = next(iter(self._calls.values()))
            if now - oldest.at <= self._max_age:
                break
            self._calls.popitem(last=False)

    def forget(self, call_sid: str) -> None:
        self._calls.pop(call_sid, None)

    async def wait_finished(self, call_sid: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for the call to be marked finished; True if it was.

        Twilio may send the call-status callback before the ``<Record>`` action of a caller who
        hung up while recording: this lets the status step give the action a moment.
        """
        entry = self._calls.get(call_sid)
        if entry is not None and entry.finished:
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
