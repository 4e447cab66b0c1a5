"""DATA's reader against the rules it replaces, a line at a time: same message, same verdict.

The reader takes stretches up to the next ``.<CRLF>`` (or a window's worth) instead of lines, so
every rule that used to be checked per line -- the final dot only at a line start, a leading
dot removed, a line over the limit refused, the bytes after the final dot left for the next
command -- is checked here against a plain line-by-line reference, on generated data cut into
arbitrary TCP-like pieces, with a small window so that long stretches come in several reads.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.inflight_budget import InflightBudget
from channels.smtp_data import BudgetedDataSMTP, _Held, _State

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

    def __init__(self, reader: asyncio.StreamReader) -> None:  # no aiosmtpd set-up
        self._reader = reader
        self.transport = object()  # type: ignore[assignment]
        self.data_size_limit = 0
        self.text_line_limit = TEXT_LINE_LIMIT


async def read_in_pieces(
    stream: bytes, cuts: list[int], window: int
) -> tuple[_State, bytes, bytes]:
    reader = asyncio.StreamReader(limit=window)
    session = _Reading(reader)
    held = _Held(InflightBudget(1 << 30))
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


def test_a_message_of_only_the_final_dot_is_empty_and_leaves_the_next_command() -> None:
    got = asyncio.run(read_in_pieces(b".\r\nQUIT\r\n", [1, 2], window=16))
    assert got == (_State.NOMINAL, b"", b"QUIT\r\n")


def test_a_line_longer_than_the_window_and_the_limit_is_refused_after_the_final_dot() -> None:
    stream = b"ok\r\n" + b"y" * 200 + b"\r\nmore\r\n.\r\nQUIT\r\n"
    got = asyncio.run(read_in_pieces(stream, [3, 50, 120], window=16))
    assert got == (_State.TOO_LONG, b"", b"QUIT\r\n")
