"""``spoc serve --workers N`` as a real process tree on a real PostgreSQL.

The parent forks N workers whose SMTP and HTTP listeners share the configured ports
(SO_REUSEPORT). Every log line carries its process id, so the log tells which worker answered
a connection: each mail's ``queued as`` line and each HTTP access line. On SQLite the flag is
refused before anything binds. Helpers come from ``test_serve_process``.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.test_serve_process import (
    HOST,
    READY_SECONDS,
    SOCKET_SECONDS,
    Gateway,
    build_message,
    free_port,
    http_get,
    inbound_contacts,
    ref_from_reply,
    running_gateways,
    send_mail,
    spoc,
    start_gateway,
    write_config,
)

__all__ = ["running_gateways"]  # the fixture, imported for the tests below

WORKERS = ("--workers", "2")
_WORKERS_READY = re.compile(r"spoc workers ready: (\d+) \(pids ([\d, ]+)\)")
_QUEUED = re.compile(r"\[(\d+)\] channels\.smtp: SMTP .* queued as (\S+)")
_ACCESS = re.compile(r'\[(\d+)\] aiohttp\.access: .*"GET /healthz')
_STARTED = re.compile(r"worker (\d) started \(pid (\d+)\)")
_METRICS_DIR = re.compile(r"workers share their metrics in (\S+)")


def wait_for(gateway: Gateway, pattern: re.Pattern[str], count: int = 1) -> list[re.Match[str]]:
    """The matches of ``pattern`` in the log once there are ``count``; fails after a while."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        found = list(pattern.finditer(gateway.process.log()))
        if len(found) >= count:
            return found
        time.sleep(0.05)
    pytest.fail(f"under {count} of {pattern.pattern!r}:\n{gateway.process.log_tail()}")


def start_workers(directory: Path, pg_url: str) -> tuple[Gateway, set[int]]:
    """``spoc serve --workers 2`` on a migrated database, and its workers' pids once ready."""
    from gateway.migrate import upgrade

    upgrade(pg_url)
    gateway = start_gateway(directory, pg_url, serve_args=WORKERS)
    [ready] = wait_for(gateway, _WORKERS_READY)
    pids = {int(pid) for pid in ready.group(2).split(", ")}
    assert len(pids) == 2 and gateway.process.pid not in pids
    return gateway, pids


def mail_each_on_its_own_connection(port: int, keys: list[str]) -> dict[str, tuple[int, bytes]]:
    """One SMTP session per message, all at once, so the kernel spreads them over the workers."""
    replies: dict[str, tuple[int, bytes]] = {}

    def send(key: str) -> None:
        try:
            with smtplib.SMTP(HOST, port, timeout=SOCKET_SECONDS) as smtp:
                sender = "worker.load@example.org"
                replies[key] = send_mail(smtp, sender, build_message(key, sender, f"{key}@w.test"))
        except (smtplib.SMTPException, OSError) as exc:
            replies[key] = (0, repr(exc).encode())

    threads = [threading.Thread(target=send, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOCKET_SECONDS * 2)
    return replies


def mail_all_accepted(gateway: Gateway, keys: list[str]) -> Counter[int]:
    """Mail ``keys`` one connection each, every one answered 250; how many mails each worker
    pid has taken so far, from the log."""
    replies = mail_each_on_its_own_connection(gateway.ready.smtp_port, keys)
    assert {key: code for key, (code, _) in replies.items()} == dict.fromkeys(keys, 250)
    return Counter(int(m.group(1)) for m in _QUEUED.finditer(gateway.process.log()))


def kill_a_worker(gateway: Gateway, victim: int) -> int:
    """SIGKILL worker ``victim``; the pid of the worker started in its place, once ready."""
    os.kill(victim, signal.SIGKILL)
    replacement = int(wait_for(gateway, _STARTED, count=3)[-1].group(2))
    wait_for(gateway, re.compile(rf"\[{replacement}\] gateway\.serve: spoc ready"))
    return replacement


def metrics_dir(gateway: Gateway) -> Path:
    """The directory the workers share their metrics in, as the parent logged it."""
    [directory] = _METRICS_DIR.findall(gateway.process.log())
    return Path(directory)


@pytest.mark.postgres
def test_two_workers_share_the_smtp_and_http_ports_and_both_take_contacts(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    gateway, pids = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)
    keys = [f"workers m{i}" for i in range(24)]

    by_worker = mail_all_accepted(gateway, keys)
    for _ in range(24):
        assert http_get(gateway.ready.http_port, "/healthz")[0] == 200

    assert set(by_worker) == pids, by_worker  # both workers took mail
    assert sum(by_worker.values()) == len(keys)
    http_by_worker = Counter(int(m.group(1)) for m in _ACCESS.finditer(gateway.process.log()))
    assert set(http_by_worker) == pids, http_by_worker  # both answered HTTP
    stored = Counter(subject for _, subject, _ in inbound_contacts(pg_url))
    assert stored == Counter(keys)

    assert gateway.process.stop(signal.SIGTERM) == 0
    log = gateway.process.log()
    assert "spoc stopped: 2 of 2 workers stopped cleanly" in log
    assert "Traceback" not in log
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.postgres
def test_workers_convert_mail_over_32_kib_in_their_conversion_processes(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    # Mail with over 32 KiB of text to walk is converted in each worker's own process pool
    # (channels.mail_conversion; attachment-heavy mail is converted on the loop instead):
    # a worker must be allowed children, which multiprocessing refuses a daemonic process.
    gateway, _ = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)
    sender = "big.mail@example.org"
    body = "The printer on floor 3 jams on every page. " * 2000  # ~86 KB of text
    replies: list[tuple[int, bytes]] = []
    for i in range(6):  # one session each, so the kernel spreads them over both workers
        with smtplib.SMTP(HOST, gateway.ready.smtp_port, timeout=SOCKET_SECONDS) as smtp:
            key = f"big m{i}"
            replies.append(send_mail(smtp, sender, build_message(key, sender, None, body)))

    assert [code for code, _ in replies] == [250] * 6, replies
    log = gateway.process.log()
    assert "daemonic processes" not in log and "kept as quarantine" not in log
    assert len(_QUEUED.findall(log)) == 6  # each one a contact, none quarantined
    assert gateway.process.stop(signal.SIGTERM) == 0


@pytest.mark.postgres
def test_sigterm_to_the_parent_under_load_exits_0_and_keeps_every_acknowledged_mail(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    gateway, _ = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)
    acked: dict[str, str] = {}
    refused: list[tuple[int, bytes]] = []
    stop_clients = threading.Event()

    def client(n: int) -> None:
        sender = f"term{n}@example.org"
        try:
            with smtplib.SMTP(HOST, gateway.ready.smtp_port, timeout=SOCKET_SECONDS) as smtp:
                for i in range(200):
                    if stop_clients.is_set():
                        return
                    key = f"sigterm c{n} m{i}"
                    code, reply = send_mail(smtp, sender, build_message(key, sender, None))
                    if code == 250:
                        acked[key] = ref_from_reply(reply)
                    else:
                        refused.append((code, reply))
                        return
        except (smtplib.SMTPException, OSError):
            return  # the listener went away: not acknowledged, nothing promised

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + READY_SECONDS
    while len(acked) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)

    code = gateway.process.stop(signal.SIGTERM)
    stop_clients.set()
    for thread in threads:
        thread.join(SOCKET_SECONDS)

    assert code == 0, gateway.process.log_tail()
    assert len(acked) >= 30
    assert all(c == 421 for c, _ in refused), refused  # "shutting down", never 451/5xx
    stored = Counter(subject for _, subject, _ in inbound_contacts(pg_url))
    assert all(stored[key] == 1 for key in acked), "a mail answered 250 is missing or twice"


@pytest.mark.postgres
def test_a_worker_killed_hard_is_replaced_and_the_ports_keep_answering(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    gateway, pids = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)
    victim = min(pids)

    replacement = kill_a_worker(gateway, victim)

    assert replacement not in pids
    assert "was killed by signal 9: starting another" in gateway.process.log()
    by_worker = mail_all_accepted(gateway, [f"after kill m{i}" for i in range(12)])
    assert replacement in by_worker and victim not in by_worker
    assert gateway.process.stop(signal.SIGTERM) == 0


@pytest.mark.postgres
def test_workers_stop_when_their_parent_is_killed_hard(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    gateway, pids = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)

    directory = metrics_dir(gateway)

    gateway.process.kill()  # SIGKILL to the parent only

    deadline = time.monotonic() + READY_SECONDS
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = [pid for pid in pids if _alive(pid)]
    for pid in orphans:  # a failed run leaves nothing behind
        os.kill(pid, signal.SIGKILL)
    assert not orphans, gateway.process.log_tail()
    with pytest.raises(OSError):  # nobody holds the SMTP port any more
        socket.create_connection((HOST, gateway.ready.smtp_port), timeout=SOCKET_SECONDS).close()
    assert not directory.exists()  # the workers removed what their parent could not


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.postgres
def test_a_worker_that_cannot_start_stops_the_others_and_the_parent_exits_1(
    tmp_path: Path, pg_url: str
) -> None:
    from gateway.migrate import upgrade

    upgrade(pg_url)
    smtp_port = free_port()
    config = write_config(tmp_path, pg_url, smtp_port, free_port())
    with socket.socket() as taken:  # someone else's listener, without SO_REUSEPORT
        taken.bind((HOST, smtp_port))
        taken.listen()
        result = spoc("serve", "--workers", "2", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "spoc cannot start" in result.stderr
    assert "before it was ready: stopping the others" in result.stderr


@pytest.mark.postgres
def test_workers_refuse_a_database_that_is_not_migrated(tmp_path: Path, pg_url: str) -> None:
    config = write_config(tmp_path, pg_url, free_port(), free_port())

    result = spoc("serve", "--workers", "2", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 1
    assert "run `spoc db upgrade`" in result.stderr
    assert "worker 1 started" not in result.stderr  # checked once, before any worker


def test_workers_on_sqlite_are_refused_naming_why(tmp_path: Path) -> None:
    smtp_port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'spoc.db'}", smtp_port, free_port())

    result = spoc("serve", "--workers", "3", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2
    assert "--workers 3 needs PostgreSQL" in result.stderr
    assert "writer" in result.stderr
    assert not (tmp_path / "spoc.db").exists()  # refused before touching anything
