"""Progress for commands that work through many items (``spoc replay``, quarantine replay).

On a terminal, stderr shows a count, the rate and the time left (tqdm); anywhere else -- a
pipe, a log file, cron -- nothing but the commands' own lines. :func:`say` prints such a line
without tearing the bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int, unit: str) -> Iterator[T]:
    """``items``, with a progress bar on stderr when it is a terminal."""
    bar = tqdm(
        items,
        total=total,
        unit=unit,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    try:
        yield from bar
    finally:
        bar.close()


def say(line: str, *, error: bool = False) -> None:
    """One line of the command's output (stderr for errors), kept clear of the bar."""
    tqdm.write(line, file=sys.stderr if error else sys.stdout)
