"""The classifier's thresholds on real mail (issue 8): the sets of tests/support/autoclass_corpus.

bench/autoclass_corpus.py prints the same figures for docs/benchmarks.md.
"""

from __future__ import annotations

import pytest

from normalizer.autoclass import classify
from tests.support.autoclass_corpus import measure, sets
from tests.support.services import require_service

THRESHOLDS = {
    "maildir/bsd": 0.99,
    "maildir/dos": 0.99,
    "rfc3464-*": 1.0,
    "arf-*": 1.0,
    "rfc3834-*": 1.0,
    "maildir/not": 1.0,
    "maildir/not (automatic)": 1.0,
    "ordinary mail": 1.0,
}


@pytest.mark.parametrize("name", list(THRESHOLDS))
def test_the_classifier_meets_its_threshold_on_the_corpus(name: str) -> None:
    expect, paths = sets()[name]
    if not paths:
        require_service(f"corpus set {name} not found (../shared/corpus or the CPython tests)")
    figure = measure(name, expect, paths, classify)
    assert figure.rate >= THRESHOLDS[name], (
        f"{name}: {figure.as_expected}/{figure.files} {expect}; wrong: {figure.wrong}"
    )


def test_the_corpus_sets_hold_what_the_issue_names() -> None:
    found = sets()
    if not found["maildir/bsd"][1]:
        require_service("sisimai corpus not found at ../shared/corpus")
    sizes = {name: len(paths) for name, (_, paths) in found.items()}
    assert sizes["maildir/bsd"] > 600 and sizes["maildir/dos"] > 50
    assert min(sizes["rfc3464-*"], sizes["arf-*"], sizes["rfc3834-*"]) >= 5
    assert sizes["ordinary mail"] >= 50
