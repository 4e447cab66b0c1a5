"""``spoc serve --workers N``: N serving processes on one machine, sharing one PostgreSQL.

What it does
    The parent checks the schema once (PostgreSQL must be at head, as for ``spoc serve``), then
    forks N workers. Each worker is a whole gateway (``gateway.serve`` with a
    :class:`~gateway.serve.WorkerRole`): SMTP, HTTP, the IMAP pollers and the outbox dispatcher.
    Its SMTP and HTTP listeners bind the configured ports with SO_REUSEPORT, so the kernel
    spreads new connections over the workers. What must happen once per machine already copes
    with several processes: outbox rows are claimed with ``FOR UPDATE SKIP LOCKED`` and fenced
    claim tokens, an IMAP mailbox is polled only by the worker holding its advisory lock, and
    two contacts of one conversation take the same conversation lock (``router.thread_lock``).
    Without ``SPOC_DASHBOARD_SECRET`` every worker reads the one signing secret kept in the
    database, so a login or a form token from one worker is good on all of them (and on other
    hosts). Every log line carries its pid.

Metrics
    ``/metrics`` in any worker answers with the sums over all of them: the parent makes a
    private directory for prometheus_client's multiprocess files, removed when it exits, and
    marks a dead worker's pid before replacing it; the dead worker's counts stay in the totals
    (``gateway.shared_metrics``). Should the parent be killed, the workers remove the directory
    as they stop.

SQLite
    Refused for N > 1 (:func:`workers_refused`): each process would run its own writer thread
    on the one database file, and the writers would fight over its lock (busy errors answered
    451) instead of sharing one group commit. One ``spoc serve`` is the way to run SQLite.

Signals and exit codes
    SIGTERM or SIGINT to the parent: every worker gets SIGTERM, stops accepting, finishes the
    contacts in flight and exits 0; the parent exits 0 when all of them did, else 1 (a worker
    still running :data:`STOP_SECONDS` later is killed). A worker that dies once it was ready
    (a crash, kill -9, the OOM killer) is replaced at once, logged at ERROR. A worker that exits
    before it is ready (a port taken by something else, the database gone) stops the others and
    the parent exits 1: that is a configuration or environment problem a restart will not mend.
    Should the parent itself be killed (SIGKILL), each worker gets SIGTERM from the kernel
    (``PR_SET_PDEATHSIG``) and stops as above: no orphan keeps the ports.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

from gateway.config import Config
from gateway.exit_codes import EXIT_FAILED, EXIT_OK
from gateway.logs import configure_logging
from gateway.serve import STOP_GRACE_SECONDS, StartupError, WorkerRole, bring_schema_up, serve
from gateway.shared_metrics import (
    join_shared_metrics,
    remove_shared_metrics_dir,
    shared_metrics_dir,
)
from router.store import is_sqlite

log = logging.getLogger(__name__)

STOP_SECONDS: Final = STOP_GRACE_SECONDS + 15.0  # a worker's own grace, then its clean-up
POLL_SECONDS: Final = 0.2  # how often the parent looks for ready messages between signals
_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
_STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT})
_PARENT_SIGNALS: Final = _STOP_SIGNALS | {signal.SIGCHLD}


def workers_refused(url: str, workers: int) -> str | None:
    """Why ``--workers`` cannot run on this database, or None when it can."""
    if workers > 1 and is_sqlite(url):
        return (
            f"--workers {workers} needs PostgreSQL: on SQLite every process would run its own "
            "writer on the one database file and they would fight over its lock; run one "
            "`spoc serve`, or set [database] url to a postgresql:// database"
        )
    return None


def run_workers(config: Config, workers: int) -> int:
    """Check the schema, run ``workers`` workers until SIGTERM/SIGINT; the exit code."""
    configure_logging(config.server.log_format, process_ids=True)
    try:
        bring_schema_up(config.database_url)
    except StartupError as exc:
        log.error("spoc cannot start: %s", exc)
        return EXIT_FAILED
    # Blocked in the parent, which takes them with sigtimedwait, and inherited blocked by each
    # worker until its own handlers are in place (gateway.serve unblocks them).
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENT_SIGNALS)
    try:
        with shared_metrics_dir() as metrics_dir:
            log.info("workers share their metrics in %s", metrics_dir)
            return _Supervisor(config, workers, metrics_dir).run()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    ready: bool = False


class _Supervisor:
    """The parent: starts the workers, replaces one that dies, stops them all on a signal."""

    def __init__(self, config: Config, workers: int, metrics_dir: Path) -> None:
        self._config = config
        self._count = workers
        self._metrics_dir = metrics_dir
        self._context = multiprocessing.get_context("fork")
        self._ready_reader, self._ready_writer = self._context.Pipe(duplex=False)
        self._workers: dict[int, _Worker] = {}
        self._all_ready_logged = False

    def run(self) -> int:
        try:
            for index in range(1, self._count + 1):
                self._start(index)
            while True:
                received = signal.sigtimedwait(_PARENT_SIGNALS, POLL_SECONDS)
                if received is not None and received.si_signo in _STOP_SIGNALS:
                    log.info("signal received: stopping %d workers", len(self._workers))
                    return self._stop_all()
                if not self._replace_dead():
                    self._stop_all()
                    return EXIT_FAILED
        except BaseException:
            # The workers are not daemonic (they start conversion processes of their own), so
            # the interpreter's exit would wait for them: stop them before the error goes on.
            self._stop_all()
            raise

    def _start(self, index: int) -> None:
        role = (self._config, index, self._ready_writer, os.getpid(), self._metrics_dir)
        # Not daemonic: multiprocessing refuses a daemonic process children, and each worker
        # starts its mail conversion processes (channels.mail_conversion). A parent that fails
        # stops the workers in run(); one that is killed, through PR_SET_PDEATHSIG.
        process = self._context.Process(target=_worker_main, args=role, name=f"spoc-{index}")
        process.start()
        self._workers[index] = _Worker(process)
        log.info("worker %d started (pid %s)", index, process.pid)

    def _take_ready_messages(self) -> None:
        while self._ready_reader.poll(0):
            index = int(self._ready_reader.recv_bytes())
            if index in self._workers:
                self._workers[index].ready = True
        if not self._all_ready_logged and all(w.ready for w in self._workers.values()):
            self._all_ready_logged = True
            pids = ", ".join(str(w.process.pid) for w in self._workers.values())
            log.info("spoc workers ready: %d (pids %s)", len(self._workers), pids)

    def _replace_dead(self) -> bool:
        """Replace each worker that died once ready; False if one died before it was ready."""
        self._take_ready_messages()  # a worker that died has written all it ever will
        for index, worker in list(self._workers.items()):
            code = worker.process.exitcode
            if code is None:
                continue
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            if not worker.ready:
                log.error(
                    "worker %d (pid %s) %s before it was ready: stopping the others",
                    index,
                    worker.process.pid,
                    how,
                )
                del self._workers[index]
                return False
            log.error("worker %d (pid %s) %s: starting another", index, worker.process.pid, how)
            self._start(index)
        return True

    def _stop_all(self) -> int:
        """SIGTERM to every worker, wait for each; 0 when all of them exited 0."""
        for worker in self._workers.values():
            if worker.process.exitcode is None:
                worker.process.terminate()
        failed = 0
        deadline = time.monotonic() + STOP_SECONDS
        for index, worker in self._workers.items():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                log.error("worker %d (pid %s) did not stop: killed", index, worker.process.pid)
                worker.process.kill()
                worker.process.join()
            if worker.process.exitcode != 0:
                failed += 1
        stopped = len(self._workers) - failed
        log.info("spoc stopped: %d of %d workers stopped cleanly", stopped, len(self._workers))
        return EXIT_OK if failed == 0 else EXIT_FAILED


def _worker_main(
    config: Config, index: int, ready: Connection, parent: int, metrics_dir: Path
) -> None:
    """A forked worker: a whole gateway on the shared ports, until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    _stop_with_the_parent(parent)
    join_shared_metrics(metrics_dir)

    def tell_ready() -> None:
        ready.send_bytes(str(index).encode("ascii"))

    role = WorkerRole(index=index, ready=tell_ready, metrics_dir=metrics_dir)
    try:
        code = asyncio.run(serve(config, role))
    finally:
        if os.getppid() != parent:  # the parent was killed: it will not remove the directory
            remove_shared_metrics_dir(metrics_dir)
    raise SystemExit(code)


def _stop_with_the_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies (Linux ``prctl``), so a
    parent killed with SIGKILL leaves no worker holding the ports. SIGTERM is still blocked
    here; the gateway takes it once its handlers are in place and stops as usual."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("worker cannot follow its parent: prctl failed (errno %d)", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
