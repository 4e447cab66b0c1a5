"""How the workers of ``spoc serve --workers N`` share one ``/metrics``: prometheus_client's
multiprocess mode.

The parent makes a fresh private directory (:func:`shared_metrics_dir`: mode 0700, removed when
it exits) and sets ``PROMETHEUS_MULTIPROC_DIR`` to it. Each worker, once forked, calls
:func:`join_shared_metrics`: from then on every counter and histogram it creates keeps its
values in a memory-mapped file of its own in that directory (``counter_<pid>.db``, …), and
``/metrics`` in any worker reads all the files through a ``MultiProcessCollector``
(``gateway.metrics``), so every scrape reports the sums over the workers, whichever one
answers it.

A worker's files stay after it dies: the counts it made stay in the totals, as prometheus
counters must (they never go down while the service runs). Nothing is done for a worker that
died: prometheus_client's ``mark_process_dead`` only removes the files of ``live*`` gauges, and
spoc has none (the gauges read from the database are exported once by
``gateway.database_gauges``). One added later with a ``live`` mode needs the parent to call it
for each worker it replaces. Folding a dead worker's counter files into one is not done: a scrape
in another worker reading the directory meanwhile would count them twice or fail on a file gone.
Each replacement adds its files (a few KiB) until the parent exits.

Why the value class is chosen again in the worker: prometheus_client decides at import whether
it runs in multiprocess mode (``values.ValueClass``, from ``PROMETHEUS_MULTIPROC_DIR``), and the
parent has imported it already (``gateway.config`` -> ``gateway.dispatcher`` ->
``gateway.metrics``) before it knows it will fork workers. A forked worker inherits that choice,
so :func:`join_shared_metrics` makes it again with the variable set, through the library's own
``values.get_value_class()``, before the worker creates any metric. Single-process
``spoc serve`` never calls it and keeps its own in-memory registry.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from prometheus_client import values

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """A fresh directory only this user can read (``mkdtemp``: mode 0700), named in
    ``PROMETHEUS_MULTIPROC_DIR`` for the processes forked inside the block; removed, and the
    variable restored, when the block ends."""
    previous = os.environ.get(MULTIPROC_DIR_ENV)
    directory = Path(tempfile.mkdtemp(prefix="spoc-metrics-"))
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
        else:
            os.environ[MULTIPROC_DIR_ENV] = previous
        remove_shared_metrics_dir(directory)


def remove_shared_metrics_dir(directory: Path) -> None:
    """Remove the directory and the files in it; one gone already is no error (each worker of
    a parent that was killed tries)."""
    shutil.rmtree(directory, ignore_errors=True)


def join_shared_metrics(directory: Path) -> None:
    """Put this (freshly forked) process's metrics in ``directory``; call it before any metric
    is created."""
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def in_multiprocess_mode() -> bool:
    """Whether metrics created now keep their values in the shared directory."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))
