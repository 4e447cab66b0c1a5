"""SMTP DATA read into one buffer, within a budget of bytes in flight shared by all sessions.

aiosmtpd's own ``smtp_DATA`` reads the message a line at a time and keeps every line as a
``bytearray`` in a list, joined at the end: about four times the message's size at its peak
(each 78-byte line is an object of its own, and the list and the joined copy live together),
and one await and a few Python steps per line. Here the reader takes everything up to the final
``<CRLF>.<CRLF>`` at once, or a window of it (a stretch of many lines, :class:`_Stretches`),
unstuffs it with one ``bytes.replace`` and appends it to one ``io.BytesIO`` whose
``getvalue()`` hands its buffer over without a copy, so the message is held once and costs a
handful of steps per stretch, not per line.

Every session charges the bytes it receives, as they arrive, to one :class:`InflightBudget`.
A message declared bigger than what is left (``MAIL FROM ... SIZE=``), or arriving when the
budget is spent, is answered ``451 4.3.1`` at DATA; a message that crosses the budget while it
arrives is read to its end and discarded, then answered ``451 4.3.1`` (RFC 5321 allows no reply
before the final dot). Its client retries later, as for any temporary failure. The bytes are
given back when the DATA exchange ends, however it ends: reply sent, error, disconnect or
timeout (aiosmtpd cancels the command on a lost connection; the ``finally`` runs then too).

What stays as aiosmtpd does it: DATA ends only on ``<CRLF>.<CRLF>`` (a ``.<CRLF>`` ends it only
right after a CRLF or at the very start, so a bare-LF "smuggled" dot stays inside the message),
lines are split on CRLF only, a leading dot is removed (RFC 5321 section 4.5.2), over
``data_size_limit`` answers ``552`` and a line over ``text_line_limit`` ``500``, both once the
message has been read to its end.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging

from aiosmtpd.smtp import MISSING, SMTP

from channels.inflight_budget import InflightBudget

log = logging.getLogger(__name__)

OVER_BUDGET = "451 4.3.1 Insufficient system resources, try again later"
_CRLF = b"\r\n"
_END_OF_DATA = b".\r\n"
_FINAL_DOT = b"\r\n.\r\n"  # the end of the data after its first line
# ``readuntil`` returns at once while lines are buffered (up to the read size, 256 KiB, and
# more behind it), so without a pause a big message is split and copied in one stretch that
# holds the event loop: after this many bytes the reader lets the other callbacks run.
_YIELD_EVERY_BYTES = 64 * 1024
# Stretches are checked, unstuffed and copied together once this many bytes of them are in
# (see ``_read_data``); they are charged to the budget as they arrive.
_CHECK_EVERY_BYTES = 16 * 1024


class _State(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()  # a line over text_line_limit: 500
    TOO_MUCH = enum.auto()  # over data_size_limit: 552
    OVER_BUDGET = enum.auto()  # the in-flight budget is spent: 451 4.3.1


_REFUSALS = {
    _State.TOO_LONG: "500 Line too long (see RFC5321 4.5.3.1.6)",
    _State.TOO_MUCH: "552 Error: Too much mail data",
    _State.OVER_BUDGET: OVER_BUDGET,
}


def declared_size(mail_options: list[str]) -> int:
    """The ``SIZE=`` a client declared with MAIL FROM (RFC 1870), or 0."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


class _Held:
    """The bytes one DATA exchange holds of the budget; all given back by :meth:`release_all`."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: InflightBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> bool:
        if not self.budget.reserve(size):
            return False
        self.size += size
        return True

    def release_all(self) -> None:
        self.budget.release(self.size)
        self.size = 0


class BudgetedDataSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a DATA reader that holds the message once, in budget."""

    # aiosmtpd sizes its StreamReader's window from ``line_length_limit``: how far DATA's reader
    # looks ahead for the next ".<CRLF>", so how much a session holds unread, and not yet
    # charged to the budget, before DATA takes it. Lines longer than that still arrive, in
    # pieces; how long a text line may be is ``text_line_limit``.
    line_length_limit = 16 * 1024
    text_line_limit = 1001  # aiosmtpd's (RFC 5321 section 4.5.3.1.6), CRLF counted

    def __init__(self, handler: object, budget: InflightBudget, **kw: object) -> None:
        super().__init__(handler, **kw)  # type: ignore[arg-type]
        self._budget = budget

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        held = _Held(self._budget)
        try:
            await self._receive(held)
        finally:
            held.release_all()

    async def _receive(self, held: _Held) -> None:
        assert self.envelope is not None
        # A declared SIZE= that does not fit now is refused before the bytes are sent; it is
        # not taken up front (a client could hold the budget by declaring and sending nothing).
        if not self._budget.fits(max(declared_size(self.envelope.mail_options), 1)):
            self._budget.refused += 1
            log.warning(
                "SMTP %r: in-flight budget spent (%d of %d bytes), DATA answered 451",
                self.session.peer if self.session else None,
                self._budget.used,
                self._budget.limit,
            )
            await self.push(OVER_BUDGET)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        state, content = await self._read_data(held)
        if state is not _State.NOMINAL:
            if state is _State.OVER_BUDGET:
                self._budget.refused += 1
                log.warning(
                    "SMTP %r: in-flight budget spent while the message arrived, answered 451",
                    self.session.peer if self.session else None,
                )
            await self.push(_REFUSALS[state])
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = content
        self.envelope.original_content = content
        del content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self, held: _Held) -> tuple[_State, bytes]:
        """Read to the final dot; the unstuffed message, or why it is refused (and b"").

        The message comes in stretches (:class:`_Stretches`: up to the final dot, or a
        window, ``line_length_limit``, at a time) instead of lines, worked on with bytes
        methods. Each stretch is only charged to the budget and kept; the line checks,
        unstuffing and copying run once per :data:`_CHECK_EVERY_BYTES` of them (and at the
        final dot). The checks also run at once on the stretch that takes the message over
        ``data_size_limit`` or that the budget refuses, so the verdict is the one a check per
        stretch would give.
        """
        buffer = io.BytesIO()
        size = 0  # bytes received, as sent (before unstuffing), as aiosmtpd counts them
        limit = self.data_size_limit
        state = _State.NOMINAL
        pending: list[bytes] = []  # stretches received and charged, not yet checked
        pending_size = 0
        partial = b""  # the start of a line whose CRLF has not arrived yet
        stretches = _Stretches(self._reader)
        since_yield = 0
        while self.transport is not None:  # pragma: no branch
            try:
                if since_yield >= _YIELD_EVERY_BYTES:
                    since_yield = 0
                    await asyncio.sleep(0)
                piece, ended = await stretches.next()
            except asyncio.CancelledError:
                log.info("Connection lost during DATA")
                self._writer.close()
                raise
            data = piece[:-3] if ended else piece
            size += len(data)
            since_yield += len(piece)
            if state is not _State.NOMINAL:
                if ended:
                    break
                continue
            taken = held.take(len(data))
            pending.append(data)
            pending_size += len(data)
            if ended or not taken or pending_size >= _CHECK_EVERY_BYTES or (limit and size > limit):
                lines, partial = _complete_lines(partial + b"".join(pending))
                pending.clear()
                pending_size = 0
                state = self._verdict(lines, partial, size, taken)
                if state is _State.NOMINAL:
                    buffer.write(_unstuff(lines))
                else:  # drop what arrived so far at once, keep reading to the final dot
                    buffer, partial = io.BytesIO(), b""
                    held.release_all()
            if ended:
                break
        if state is not _State.NOMINAL:
            return state, b""
        return state, buffer.getvalue()

    def _verdict(self, lines: bytes, partial: bytes, size: int, taken: bool) -> _State:
        """The message's state once ``lines`` (whole lines) and ``partial`` (the start of the
        next) are in, ``size`` bytes in all, ``taken``: whether the budget took the last
        stretch. A line over the limit first, then the size, then the budget."""
        length_limit = self.text_line_limit
        if len(partial) > length_limit or (
            len(lines) > length_limit and _longest_line(lines) > length_limit
        ):
            return _State.TOO_LONG
        if self.data_size_limit and size > self.data_size_limit:
            return _State.TOO_MUCH
        if not taken:
            return _State.OVER_BUDGET
        return _State.NOMINAL


class _Stretches:
    """The data as DATA's reader takes it: stretches of the stream, the last one ending with
    the final dot, and nothing after it (that is the client's next command).

    The final dot is ``.<CRLF>`` at the start of a line: right after a CRLF, or at the very
    start of the data. Asking the stream for everything up to the next ``.<CRLF>`` finds it
    wherever it is, but prose ends most lines with a dot, so a 4 KB mail would come in
    dozens of stretches, each a few Python steps. Asking for everything up to the next
    ``<CRLF>.<CRLF>`` takes such a mail at once, but cannot see a final dot whose CRLF was
    taken already, in the stretch before.

    So the first three bytes are taken by count (two more if they are ``<CRLF>.``, which may
    begin the final dot after an empty line): that decides whether the data is only the final
    dot. From then on ``<CRLF>.<CRLF>`` is asked for whenever no part of it can lie in what
    was taken (no end of it is a start of ``<CRLF>.<CRLF>``), and ``.<CRLF>`` otherwise. A
    stretch the window cuts (``LimitOverrunError``) keeps what could begin the separator in
    the stream, so once ``<CRLF>.<CRLF>`` is asked for, it is asked for to the end. Odd data
    (an empty first line, a first line of one or two characters) is read by ``.<CRLF>``:
    exact, only slower for prose.
    """

    __slots__ = ("_reader", "_separator", "_tail")

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._separator = b""  # none yet: the first bytes are taken by count
        self._tail = _CRLF  # the stream's last (up to) four bytes; the data starts a line

    async def next(self) -> tuple[bytes, bool]:
        """The next stretch, and whether it ends with the final dot."""
        reader, separator = self._reader, self._separator
        if not separator:
            piece = await reader.readexactly(3)
            if piece == _FINAL_DOT[:3]:
                piece += await reader.readexactly(2)
        else:
            try:
                piece = await reader.readuntil(separator)
            except asyncio.LimitOverrunError as exc:
                # No separator within the reader's window: take what can't be part of one.
                piece = await reader.read(exc.consumed)
        tail = piece if len(piece) >= 5 else self._tail + piece
        ended = tail.endswith(_FINAL_DOT)
        self._tail = tail[-4:]
        if separator != _FINAL_DOT:
            self._separator = _FINAL_DOT if _open_final_dot(self._tail) == 0 else _END_OF_DATA
        return piece, ended


def _open_final_dot(tail: bytes) -> int:
    """How many of ``tail``'s last bytes could be the start of ``<CRLF>.<CRLF>`` (0 to 4)."""
    for size in (4, 3, 2, 1):
        if tail.endswith(_FINAL_DOT[:size]):
            return size
    return 0


def _complete_lines(data: bytes) -> tuple[bytes, bytes]:
    """``data`` cut after its last CRLF: (the whole lines, the start of the next line)."""
    cut = data.rfind(_CRLF) + 2
    if cut == 1:  # no CRLF at all
        return b"", data
    return data[:cut], data[cut:]


def _longest_line(lines: bytes) -> int:
    """The length of the longest of ``lines`` (whole lines), its CRLF counted."""
    if not lines:
        return 0
    return max(map(len, lines.split(_CRLF))) + 2


def _unstuff(lines: bytes) -> bytes:
    """Whole lines with the leading dot of each line removed (RFC 5321 section 4.5.2)."""
    if lines[:1] == b".":
        lines = lines[1:]
    return lines.replace(b"\r\n.", _CRLF)
