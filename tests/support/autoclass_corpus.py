"""The mail-classifier corpus: which files must be automatic, which normal, and the counting.

One source for ``bench/autoclass_corpus.py`` (the figures in docs/benchmarks.md) and for the
CI test that holds the thresholds (tests/unit/normalizer/test_autoclass_corpus.py).

"Automatic" is what the router treats as system mail (:data:`router.system_mail
.SYSTEM_CLASSES`: bounce, feedback, mdn, auto_reply, loop) -- never a ticket of its own, never
an answer. "Normal" is everything else (human, list, bulk), which opens tickets as before.

Sets, each a list of files:

- ``maildir/bsd``, ``maildir/dos``: sisimai's bounces and automatic mail; at least 99% automatic.
- ``rfc3464-*``, ``arf-*``, ``rfc3834-*`` from both: DSNs, feedback reports, RFC 3834
  auto-replies; 100% automatic.
- ``maildir/not``: sisimai's "not a bounce" mail; normal, except ``rb-issue-368-bug.eml``:
  ``Return-Path: <>``, ``Auto-Submitted: auto-replied``, from ``postmaster@`` and titled
  "email bounce notification" -- it *is* an automatic bounce (sisimai files it there because
  its parser could not read it, see its issue 368); answering it would start a mail loop, so
  it must be automatic here.
- ordinary mail: CPython's email test messages (``test/test_email/data/msg_*.txt``) but the
  four that are delivery-status reports, and ``tests/fixtures/email`` but ``auto_reply.eml``;
  100% normal.
"""

from __future__ import annotations

import email
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from normalizer.contact import AutoClass
from router.system_mail import SYSTEM_CLASSES

ROOT = Path(__file__).resolve().parents[2]
SISIMAI = ROOT.parent / "shared" / "corpus" / "sisimai" / "maildir"
CPYTHON_MAIL = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
FIXTURES = ROOT / "tests" / "fixtures" / "email"
LOOP_MARKER = "servicedesk@example.com"

# sisimai files it cannot parse as bounces, although they are automatic bounces (see above).
AUTOMATIC_IN_NOT = frozenset({"rb-issue-368-bug.eml"})
# CPython test messages that are multipart/report delivery-status notifications.
CPYTHON_REPORTS = frozenset({"msg_05.txt", "msg_16.txt", "msg_25.txt", "msg_43.txt"})
AUTOMATIC_FIXTURES = frozenset({"auto_reply.eml"})

Classify = Callable[..., AutoClass]


@dataclass(frozen=True, slots=True)
class Figure:
    """One set's result: how many files, how many came out as the set expects."""

    name: str
    expect: str  # "automatic" | "normal"
    files: int
    as_expected: int
    wrong: tuple[tuple[str, str], ...]  # (file, class) of each miss

    @property
    def rate(self) -> float:
        return self.as_expected / self.files if self.files else 0.0


def is_automatic(found: AutoClass) -> bool:
    return found in SYSTEM_CLASSES


def sets() -> dict[str, tuple[str, list[Path]]]:
    """Every set by name: (what it must be, its files); sets whose folder is missing are empty."""

    def files(folder: Path, pattern: str = "*") -> list[Path]:
        return sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []

    both = files(SISIMAI / "bsd") + files(SISIMAI / "dos")
    not_bounces = files(SISIMAI / "not")
    return {
        "maildir/bsd": ("automatic", files(SISIMAI / "bsd")),
        "maildir/dos": ("automatic", files(SISIMAI / "dos")),
        "rfc3464-*": ("automatic", [p for p in both if p.name.startswith("rfc3464-")]),
        "arf-*": ("automatic", [p for p in both if p.name.startswith("arf-")]),
        "rfc3834-*": ("automatic", [p for p in both if p.name.startswith("rfc3834-")]),
        "maildir/not": ("normal", [p for p in not_bounces if p.name not in AUTOMATIC_IN_NOT]),
        "maildir/not (automatic)": (
            "automatic",
            [p for p in not_bounces if p.name in AUTOMATIC_IN_NOT],
        ),
        "ordinary mail": (
            "normal",
            [p for p in files(CPYTHON_MAIL, "msg_*.txt") if p.name not in CPYTHON_REPORTS]
            + [p for p in files(FIXTURES, "*.eml") if p.name not in AUTOMATIC_FIXTURES],
        ),
    }


def measure(name: str, expect: str, paths: list[Path], classify: Classify) -> Figure:
    """Classify every file as the corpus gives it (no SMTP envelope: Return-Path tells)."""
    wrong: list[tuple[str, str]] = []
    for path in paths:
        found = classify(email.message_from_bytes(path.read_bytes()), None, LOOP_MARKER)
        if is_automatic(found) != (expect == "automatic"):
            wrong.append((path.name, found.value))
    return Figure(name, expect, len(paths), len(paths) - len(wrong), tuple(wrong))
