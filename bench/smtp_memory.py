"""Peak memory of ``spoc serve`` taking one big message, as a multiple of the message's size.

Two servers, each in a process of its own, get the same message (a 25 MB mail with one
base64 attachment) over smtplib, one at a time:

- a bare aiosmtpd sink (``handle_DATA`` returns 250): the baseline, what any aiosmtpd server
  pays to receive the message;
- ``python -m gateway serve`` on SQLite: the whole pipeline (receive, parse, route, commit).

For each, after a small warm-up message, the script resets the process's peak-RSS counter
(``/proc/<pid>/clear_refs``), sends the big message, and reads ``VmHWM`` (the high-water mark)
from ``/proc/<pid>/status``. The figure is the growth: high-water mark minus the RSS just
before sending, divided by the message size. A sampler thread also records RSS every 20 ms;
``--plot FILE.png`` draws it over time (needs matplotlib: ``pip install -e '.[bench]'``).

    python bench/smtp_memory.py --size-mb 25 --repeat 3 --plot docs/img/smtp_memory.png

Linux only (``/proc``). Compare only figures of the same run.
"""

from __future__ import annotations

import argparse
import base64
import os
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ports import free_ports  # bench/ is on sys.path when run as a script
from spoc_config import DESK, clean_environment, config_text, serve_command

HERE = Path(__file__).resolve().parent
SENDER = "big.sender@example.org"


def big_message(size: int, tag: str) -> bytes:
    """A mail of about ``size`` bytes: a short text part and one base64 attachment."""
    head = (
        f"From: Big Sender <{SENDER}>\r\nTo: {DESK}\r\nSubject: big attachment {tag}\r\n"
        f"Message-ID: <big-{tag}-{time.time_ns()}@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n"
        "--XYZ\r\nContent-Type: text/plain\r\n\r\nThe logs are attached.\r\n"
        "--XYZ\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="logs.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    tail = b"\r\n--XYZ--\r\n"
    encoded_len = size - len(head) - len(tail)
    raw_len = (encoded_len * 57 // 78) // 3 * 3  # 76 chars + CRLF per 57 raw bytes
    encoded = base64.encodebytes(os.urandom(raw_len)).replace(b"\n", b"\r\n")
    return head + encoded + tail


def proc_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def send(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
        client.ehlo("bench.test")
        client.mail(SENDER)
        client.rcpt(DESK)
        try:
            return client.data(raw)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


@dataclass
class Sampler:
    """RSS of one process every 20 ms, in a thread, until stopped."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                rss = proc_kib(self.pid, "VmRSS") / 1024
            except (OSError, KeyError):
                return
            self.samples.append((time.monotonic() - self._started, rss))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True, slots=True)
class Run:
    server: str
    code: int
    before_mib: float
    peak_mib: float
    size: int
    samples: list[tuple[float, float]]

    @property
    def growth_ratio(self) -> float:
        return (self.peak_mib - self.before_mib) * 1024 * 1024 / self.size


def measure(name: str, pid: int, port: int, size: int) -> Run:
    send(port, big_message(64 * 1024, "warm-up"))
    message = big_message(size, name)
    time.sleep(0.5)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = proc_kib(pid, "VmRSS") / 1024
    sampler = Sampler(pid)
    code, _ = send(port, message)
    time.sleep(0.3)
    peak = proc_kib(pid, "VmHWM") / 1024
    sampler.stop()
    return Run(name, code, before, peak, len(message), sampler.samples)


def wait_listening(port: int, child: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {child.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {seconds:.0f}s")


def with_server(
    args: list[str], port: int, log: Path, work: Callable[[int], Run], env: dict[str, str]
) -> Run:
    with log.open("wb") as out:
        child = subprocess.Popen(
            args, cwd=HERE.parent, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_listening(port, child)
        return work(child.pid)
    finally:
        child.terminate()
        child.wait(60)


def sink_run(size: int, directory: Path) -> Run:
    (port,) = free_ports(1)
    args = [sys.executable, str(Path(__file__).resolve()), "--serve-sink", str(port)]
    log = directory / "sink.log"
    env = {**os.environ}
    return with_server(args, port, log, lambda pid: measure("sink", pid, port, size), env)


def spoc_run(size: int, directory: Path, extra_smtp: str) -> Run:
    smtp_port, http_port = free_ports(2)
    db = directory / f"spoc-{time.monotonic_ns()}.db"
    config = directory / "config.toml"
    config.write_text(config_text(db, smtp_port, http_port, smtp=extra_smtp))
    args, env = serve_command(config), clean_environment()
    log = directory / "serve.log"
    run = with_server(args, smtp_port, log, lambda pid: measure("spoc", pid, smtp_port, size), env)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM contacts WHERE length(raw) > ?", (size // 2,))
        if stored.fetchone()[0] != 1 and run.code == 250:
            raise SystemExit("spoc answered 250 but the big message is not stored")
    return run


def serve_sink(port: int) -> None:
    import asyncio

    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Sink:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Sink(), data_size_limit=None, enable_SMTPUTF8=True), "127.0.0.1", port
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for run in runs:
        xs = [t for t, _ in run.samples]
        ax.plot(xs, [rss - run.before_mib for _, rss in run.samples], label=run.server)
    size_mib = runs[0].size / 1024 / 1024
    ax.axhline(3 * size_mib, linestyle="--", color="grey", label="3 x message size")
    ax.set_xlabel("seconds since the client connected")
    ax.set_ylabel("RSS growth (MiB)")
    ax.set_title(f"Memory while one {size_mib:.0f} MiB message is received and stored")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=25.0, help="message size in MB (10^6)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plot", type=Path, help="write memory over time (last run) as PNG")
    parser.add_argument("--smtp", default="", help="extra lines for [smtp] in spoc's config")
    parser.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    size = int(args.size_mb * 1_000_000)
    directory = Path(tempfile.mkdtemp(prefix="spoc-memory-"))
    sinks, spocs = [], []
    for _ in range(args.repeat):
        sinks.append(sink_run(size, directory))
        spocs.append(spoc_run(size, directory, args.smtp))
        for run in (sinks[-1], spocs[-1]):
            print(
                f"{run.server:5} reply {run.code}  RSS before {run.before_mib:7.1f} MiB  "
                f"peak {run.peak_mib:7.1f} MiB  growth {run.growth_ratio:4.2f} x message",
                flush=True,
            )
    sink = statistics.median(r.growth_ratio for r in sinks)
    spoc = statistics.median(r.growth_ratio for r in spocs)
    print(f"message {size / 1e6:.1f} MB; median peak growth over {args.repeat} run(s):")
    print(f"  bare aiosmtpd sink {sink:.2f} x the message")
    print(f"  spoc serve         {spoc:.2f} x the message (target < 3)")
    print(f"  spoc / sink        {spoc / sink:.2f}")
    if args.plot:
        plot([sinks[-1], spocs[-1]], args.plot)
        print(f"plot written to {args.plot}")
    return 0 if all(r.code == 250 for r in sinks + spocs) else 1


if __name__ == "__main__":
    sys.exit(main())
