"""The directory the workers of ``spoc serve --workers N`` share their metrics through."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.metrics import Metrics
from gateway.shared_metrics import MULTIPROC_DIR_ENV, in_multiprocess_mode, shared_metrics_dir


def test_the_directory_is_private_named_for_the_workers_and_removed_with_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MULTIPROC_DIR_ENV, "/somewhere/else")

    with shared_metrics_dir() as directory:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert os.environ[MULTIPROC_DIR_ENV] == str(directory)
        (directory / "counter_1.db").write_bytes(b"left by a worker")

    assert not directory.exists()
    assert os.environ[MULTIPROC_DIR_ENV] == "/somewhere/else"


def test_the_directory_goes_when_the_parent_fails_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_ENV, raising=False)

    with pytest.raises(RuntimeError), shared_metrics_dir() as directory:
        raise RuntimeError("the supervisor failed")

    assert not directory.exists()
    assert MULTIPROC_DIR_ENV not in os.environ


def test_shared_metrics_in_a_process_that_did_not_join_are_refused(tmp_path: Path) -> None:
    assert not in_multiprocess_mode()  # the test process keeps its own registry

    with pytest.raises(RuntimeError, match="join_shared_metrics"):
        Metrics(tmp_path)
