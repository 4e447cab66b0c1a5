"""DATA's reader against the rules it replaces, a line at a time: same message, same verdict.

The reader takes stretches up to the next ``.<CRLF>`` (or a window's worth) instead of lines, so
every rule that used to be checked per line -- the final dot only at a line start, a leading
dot removed, a line over the limit refused, the bytes after the final dot left for the next
command -- is checked here against a plain line-by-line reference, on generated data cut into
arbitrary TCP-like pieces, with a small window so that long stretches come in several reads.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from channels.inflight_budget import InflightBudget
from channels.smtp_data import (
    _YIELD_EVERY_BYTES,
    BudgetedDataSMTP,
    _complete_lines,
    _Held,
    _longest_line,
    _State,
    _Stretches,
    _unstuff,
)

TEXT_LINE_LIMIT = 40

# Fragments that make the interesting cases likely: dots at line starts, bare CR and LF,
# look-alikes of the final dot, lines over the limit, and the final dot itself.
FRAGMENTS = [
    b"a",
    b"word ",
    b".",
    b"..",
    b"\r\n",
    b"\r",
    b"\n",
    b"\n.\n",
    b"\r\n.\r",
    b".\r\n",
    b"\r\n..\r\n",
    b"x" * 45,
    b"\x00",
]


def reference(stream: bytes) -> tuple[_State, bytes, bytes]:
    """The old reader's rules, a CRLF line at a time: (verdict, message, what is left)."""
    lines, position = [], 0
    while True:
        end = stream.index(b"\r\n", position) + 2
        line, position = stream[position:end], end
        if line == b".\r\n":
            break
        lines.append(line)
    rest = stream[position:]
    if any(len(line) > TEXT_LINE_LIMIT for line in lines):
        return _State.TOO_LONG, b"", rest
    message = b"".join(line[1:] if line.startswith(b".") else line for line in lines)
    return _State.NOMINAL, message, rest


class _Reading(BudgetedDataSMTP):
    """Only what ``_read_data`` uses of a session: its reader, limits and a live transport."""

    def __init__(self, reader: asyncio.StreamReader, data_size_limit: int = 0) -> None:
        self._reader = reader  # no aiosmtpd set-up
        self.transport = object()  # type: ignore[assignment]
        self.data_size_limit = data_size_limit
        self.text_line_limit = TEXT_LINE_LIMIT


class _CheckedPerStretch(_Reading):
    """The reader that checked, unstuffed and copied every stretch as it came: the reference
    for the verdicts (size limit and budget too) of the reader that batches the checks, on
    the same stretches."""

    async def _read_data(self, held: _Held) -> tuple[_State, bytes]:
        # As it was before the checks were batched (3e54b1c), less its docstring and log line,
        # taking its stretches from _Stretches.
        buffer = io.BytesIO()
        size = 0  # bytes received, as sent (before unstuffing), as aiosmtpd counts them
        limit = self.data_size_limit
        length_limit = self.text_line_limit
        state = _State.NOMINAL
        stretches = _Stretches(self._reader)
        partial = b""  # the start of a line whose CRLF has not arrived yet
        since_yield = 0
        while self.transport is not None:  # pragma: no branch
            if since_yield >= _YIELD_EVERY_BYTES:
                since_yield = 0
                await asyncio.sleep(0)
            piece, ended = await stretches.next()
            data = piece[:-3] if ended else piece
            size += len(data)
            since_yield += len(piece)
            if state is _State.NOMINAL:
                lines, partial = _complete_lines(partial + data)
                if len(partial) > length_limit or (
                    len(lines) > length_limit and _longest_line(lines) > length_limit
                ):
                    state = _State.TOO_LONG
                elif limit and size > limit:
                    state = _State.TOO_MUCH
                elif not held.take(len(data)):
                    state = _State.OVER_BUDGET
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


async def read_in_pieces(
    stream: bytes,
    cuts: list[int],
    window: int,
    data_size_limit: int = 0,
    budget: int = 1 << 30,
    reading_class: type[_Reading] = _Reading,
) -> tuple[_State, bytes, bytes]:
    reader = asyncio.StreamReader(limit=window)
    session = reading_class(reader, data_size_limit)
    held = _Held(InflightBudget(budget))
    reading = asyncio.ensure_future(session._read_data(held))
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        reader.feed_data(stream[start:cut])
        start = cut
        await asyncio.sleep(0)
    reader.feed_eof()
    state, message = await reading
    return state, message, await reader.read()


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(st.sampled_from(FRAGMENTS), max_size=40),
    after=st.sampled_from([b"", b"QUIT\r\n", b"MAIL FROM:<a@b.example>\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    window=st.integers(min_value=5, max_value=64),
)
def test_the_stretch_reader_gives_what_the_line_reader_gave(
    body: list[bytes], after: bytes, cuts: list[int], window: int
) -> None:
    # Whatever the body, a final dot follows it, then maybe the client's next command.
    stream = b"".join(body) + b"\r\n.\r\n" + after
    expected = reference(stream)
    got = asyncio.run(read_in_pieces(stream, [c for c in cuts if c < len(stream)], window))
    assert got == expected


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(st.sampled_from(FRAGMENTS), max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8),
    window=st.integers(min_value=5, max_value=64),
    data_size_limit=st.sampled_from([0, 30, 120, 400]),
    budget=st.sampled_from([1 << 30, 50, 200]),
)
# The budget refuses the second line and takes the third: a verdict taken only at the end would
# see the budget take the last stretch and miss the refusal.
@example(
    body=[b"word "] * 6 + [b".\r\n"] + [b"word "] * 6 + [b".\r\n", b"a", b".\r\n"],
    cuts=[],
    window=64,
    data_size_limit=0,
    budget=50,
)
def test_batched_checks_give_the_verdict_of_a_check_per_stretch(
    body: list[bytes], cuts: list[int], window: int, data_size_limit: int, budget: int
) -> None:
    """Guards the order of the verdicts (a long line, then the size, then the budget) when
    several stretches are checked at once."""
    stream = b"".join(body) + b"\r\n.\r\n" + b"QUIT\r\n"
    cuts = [c for c in cuts if c < len(stream)]

    def read(reading_class: type[_Reading]) -> tuple[_State, bytes, bytes]:
        return asyncio.run(
            read_in_pieces(stream, cuts, window, data_size_limit, budget, reading_class)
        )

    assert read(_Reading) == read(_CheckedPerStretch)


def test_a_message_of_only_the_final_dot_is_empty_and_leaves_the_next_command() -> None:
    got = asyncio.run(read_in_pieces(b".\r\nQUIT\r\n", [1, 2], window=16))
    assert got == (_State.NOMINAL, b"", b"QUIT\r\n")


def test_a_line_longer_than_the_window_and_the_limit_is_refused_after_the_final_dot() -> None:
    stream = b"ok\r\n" + b"y" * 200 + b"\r\nmore\r\n.\r\nQUIT\r\n"
    got = asyncio.run(read_in_pieces(stream, [3, 50, 120], window=16))
    assert got == (_State.TOO_LONG, b"", b"QUIT\r\n")


def test_a_message_of_only_an_empty_line_is_that_line() -> None:
    got = asyncio.run(read_in_pieces(b"\r\n.\r\nQUIT\r\n", [1, 4], window=16))
    assert got == (_State.NOMINAL, b"\r\n", b"QUIT\r\n")


async def stretches_of(
    stream: bytes, window: int, packet: int = 1 << 30, cuts: list[int] | None = None
) -> list[bytes]:
    """The stretches read from ``stream``, which arrives ``packet`` bytes at a time (or in
    pieces cut at ``cuts``)."""
    reader = asyncio.StreamReader(limit=window)
    stretches = _Stretches(reader)
    pieces: list[bytes] = []

    async def read() -> None:
        ended = False
        while not ended:
            piece, ended = await stretches.next()
            pieces.append(piece)

    reading = asyncio.ensure_future(read())
    cuts = list(range(0, len(stream), packet)) if cuts is None else [0, *cuts]
    for start, end in zip(cuts, [*cuts[1:], len(stream)], strict=True):
        reader.feed_data(stream[start:end])
        await asyncio.sleep(0)
    reader.feed_eof()
    await reading
    return pieces


def test_prose_whose_lines_end_with_a_dot_comes_in_one_stretch_after_the_first_bytes() -> None:
    """The cost this reader saves: a stretch per line that ends with a dot."""
    prose = b"Subject: printer\r\n\r\n" + b"The printer on floor two is jammed again.\r\n" * 90
    pieces = asyncio.run(stretches_of(prose + b".\r\nQUIT\r\n", window=16 * 1024))
    assert pieces == [prose[:3], prose[3:] + b".\r\n"]


@pytest.mark.parametrize("window", [64, 100, 512, 1000])
@pytest.mark.parametrize("packet", [7, 300, 1460])
def test_longer_prose_comes_in_a_stretch_per_window_or_packet(window: int, packet: int) -> None:
    prose = b"Subject: printer\r\n\r\n" + b"The printer on floor two is jammed again.\r\n" * 90
    pieces = asyncio.run(stretches_of(prose + b".\r\nQUIT\r\n", window, packet))
    assert b"".join(pieces) == prose + b".\r\n"
    assert len(pieces) <= 3 + len(prose) // (min(window, packet) - 5)


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(st.sampled_from(FRAGMENTS), max_size=40),
    window=st.integers(min_value=5, max_value=64),
)
def test_stretches_are_the_stream_up_to_the_first_final_dot(body: list[bytes], window: int) -> None:
    stream = b"".join(body) + b"\r\n.\r\nQUIT\r\n"
    end = (b"\r\n" + stream).index(b"\r\n.\r\n") + 3  # in the stream: after the dot's CRLF
    assert b"".join(asyncio.run(stretches_of(stream, window))) == stream[:end]


def test_a_window_cut_after_a_line_end_keeps_the_reader_on_the_whole_final_dot() -> None:
    """Such a cut leaves the CRLF of a possible final dot in the stretch before; the window
    keeps what could start ``<CRLF>.<CRLF>`` in the stream, so it is still found whole."""
    line = b"The printer on floor two is jammed again.\r\n"
    stream = b"Subject: printer\r\n\r\n" + line * 90 + b".\r\nQUIT\r\n"
    # Packets end four bytes into every second line: the window (64) cuts them at a CRLF.
    starts = [at for at in range(2, len(stream)) if stream[at - 2 : at] == b"\r\n"]
    cuts = [at + 4 for at in starts[::2] if at + 4 < len(stream)]
    pieces = asyncio.run(stretches_of(stream, window=64, cuts=cuts))
    assert b"".join(pieces) == stream[: -len(b"QUIT\r\n")]
    assert any(piece.endswith(b"\r\n") for piece in pieces[1:-1])  # cut there, indeed
    assert len(pieces) <= len(cuts) + 3
