"""The mail classifier on real mail: per-set figures, against a baseline in the same run.

Sets and what each must be are in ``tests/support/autoclass_corpus.py`` (sisimai's bounces in
``../shared/corpus``, CPython's email test messages, ``tests/fixtures/email``). The baseline is
``normalizer/autoclass.py`` as it was at ``--baseline`` (default: the commit before issue 8's
classifier work), loaded from git into this process, so both run on the same files, machine and
Python.

    python bench/autoclass_corpus.py [--baseline REV] [--show-misses]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from normalizer.autoclass import classify  # noqa: E402
from tests.support.autoclass_corpus import Classify, Figure, measure, sets  # noqa: E402

DEFAULT_BASELINE = "9e84dca"


def baseline_classifier(rev: str) -> Classify:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:normalizer/autoclass.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("autoclass_baseline", loader=None)
    assert spec is not None
    module = ModuleType(spec.name)
    exec(compile(source, f"{rev}:normalizer/autoclass.py", "exec"), module.__dict__)
    found: Classify = module.classify
    return found


def run(classify_fn: Classify) -> tuple[list[Figure], float]:
    started = time.perf_counter()
    figures = [measure(name, want, paths, classify_fn) for name, (want, paths) in sets().items()]
    return figures, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare")
    parser.add_argument("--show-misses", action="store_true", help="list every file misjudged")
    args = parser.parse_args()
    baseline = baseline_classifier(args.baseline)
    run(classify)  # warm the file cache, so neither timing pays for the disk
    base, base_seconds = run(baseline)
    ours, ours_seconds = run(classify)
    print(f"python {platform.python_version()} on {platform.machine()}, baseline {args.baseline}")
    print(f"{'set':<26}{'must be':<11}{'files':>6}{'now':>16}{'baseline':>16}{'ratio':>8}")
    for now, then in zip(ours, base, strict=True):
        ratio = f"{now.rate / then.rate:.3f}" if then.rate else "-"
        print(
            f"{now.name:<26}{now.expect:<11}{now.files:>6}"
            f"{now.as_expected:>7} {now.rate:>7.2%}{then.as_expected:>7} {then.rate:>7.2%}"
            f"{ratio:>8}"
        )
    files = sum(f.files for f in ours)
    print(
        f"time: {ours_seconds * 1e6 / max(files, 1):.0f} us/file now, "
        f"{base_seconds * 1e6 / max(files, 1):.0f} us/file baseline (parse + classify)"
    )
    for now, then in zip(ours, base, strict=True):
        if now.wrong:
            print(f"misjudged now in {now.name}: " + ", ".join(f"{f} ({c})" for f, c in now.wrong))
        if then.wrong and args.show_misses:
            missed = ", ".join(f for f, _ in then.wrong)
            print(f"misjudged by the baseline in {then.name}: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
