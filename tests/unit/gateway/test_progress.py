"""gateway.progress: a count, rate and time left on a terminal; nothing at all anywhere else."""

from __future__ import annotations

import io

import pytest

from gateway.progress import progress, say


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_silent_and_lines_still_print(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    items = []
    for n in progress(range(3), total=3, unit="file"):
        items.append(n)
        say(f"file {n}")
    out, err = capsys.readouterr()
    assert items == [0, 1, 2]
    assert out == "file 0\nfile 1\nfile 2\n" and err == ""


def test_on_a_terminal_stderr_shows_the_count_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert list(progress(range(5), total=5, unit="file")) == [0, 1, 2, 3, 4]
    shown = terminal.getvalue()
    assert "5/5" in shown and "file/s" in shown
