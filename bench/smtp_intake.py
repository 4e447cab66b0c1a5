"""SMTP intake benchmark: the whole spoc pipeline against a bare aiosmtpd sink, same client.

Every server runs in a process of its own (one Python process is one core); this process is
the load client. For each connection count it runs, alternating:

``sink``
    aiosmtpd's ``SMTP`` protocol factory in its own loop, ``handle_DATA`` answering ``250 OK``
    at once, the same ``data_size_limit`` as spoc: the ceiling for this client and this server
    library on this machine.
``spoc``
    the real ``python -m gateway serve`` on a fresh SQLite database (WAL, synchronous=FULL):
    parse, route, commit, ``250`` after the commit, INFO logging to a file, the HTTP app and
    the outbox dispatcher, with ``[outbound_smtp]`` pointed at a second sink process so the
    acknowledgements the pipeline queues are really sent.
``spoc-big``
    the same on a database already holding ``--seed-tickets`` tickets (``bench/seed_tickets.py``
    fills it once; ``--db`` keeps the file between runs).
``base`` (with ``--base-tree DIR``)
    ``spoc`` from another commit's files (``git archive COMMIT | tar -x -C DIR``): before and
    after a change, in the same run.

The client keeps N connections open (aiosmtplib) and sends a fixed number of messages, a mix of
~4 KB plain text and ~100 KB with a base64 attachment, each with its own Message-ID and its own
sender (a new requester and ticket each). A warm-up batch is sent first and not counted. After
every spoc run the database is opened and the contacts of that run are counted: they must equal
the ``250`` answers, or the run is reported as failed.

    python bench/smtp_intake.py --messages 3000 --connections 8,32 --repeat 3 \\
        --db /tmp/spoc-bench/1m.db --seed-tickets 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
from ports import free_port  # bench/ is on sys.path when run as a script

DESK = "servicedesk@example.com"
MAX_MESSAGE_BYTES = 26_214_400  # spoc's default [smtp] max_message_bytes; the sink uses it too
CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent

ACK_MODES = {
    # name: ([acks] enabled, global_per_minute)
    "shipped": (True, 120),  # the shipped config.toml: at most 120 acks a minute in all
    "every": (True, 10_000_000),  # every new ticket is acknowledged over SMTP
    "off": (False, 120),
}

_WORDS = (
    "printer laptop screen vpn password account mailbox teams meeting badge keyboard network "
    "wifi office floor since this morning again please help cannot connect error message shows "
    "restart tried twice colleague same problem urgent tomorrow presentation thanks regards"
).split()


# ---- messages ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Mail:
    sender: str
    raw: bytes
    big: bool


def _paragraphs(rnd: random.Random, size: int) -> str:
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rnd.choice(_WORDS) for _ in range(12)).capitalize() + "."
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines)


def build_mail(run_id: str, n: int, big: bool, rnd: random.Random) -> Mail:
    """One message: ~4 KB plain text, or ~100 KB with a ~72 KB binary attachment."""
    sender = f"user{n}.{run_id}@bench.example.org"
    headers = (
        f"From: Bench User {n} <{sender}>\r\n"
        f"To: IT Service Desk <{DESK}>\r\n"
        f"Subject: Laptop {n} cannot reach the VPN since this morning\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <bench.{run_id}.{n}@bench.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if not big:
        body = _paragraphs(rnd, 3_700)
        text = (
            f"{headers}Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{body}\r\n"
        )
        return Mail(sender, text.encode(), big=False)
    blob = base64.encodebytes(rnd.randbytes(72_000)).decode().replace("\n", "\r\n")
    boundary = f"=_bench_{run_id}_{n}"
    text = (
        f'{headers}Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{_paragraphs(rnd, 1_500)}\r\n"
        f"--{boundary}\r\nContent-Type: application/pdf\r\n"
        f'Content-Disposition: attachment; filename="screenshot-{n}.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{blob}"
        f"--{boundary}--\r\n"
    )
    return Mail(sender, text.encode(), big=True)


def build_mails(run_id: str, count: int, big_ratio: float) -> list[Mail]:
    rnd = random.Random(run_id)
    step = round(1 / big_ratio) if big_ratio > 0 else 0
    return [build_mail(run_id, n, bool(step) and n % step == step - 1, rnd) for n in range(count)]


# ---- the client -------------------------------------------------------------------------------
@dataclass(slots=True)
class Outcome:
    latencies: list[float] = field(default_factory=list)
    codes: Counter[int] = field(default_factory=Counter)
    reconnects: int = 0


async def _connect(port: int) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120, local_hostname="bench")
    await client.connect()
    return client


async def _worker(client: aiosmtplib.SMTP, port: int, work: Iterator[Mail], out: Outcome) -> None:
    for mail in work:
        started = time.perf_counter()
        try:
            errors, _ = await client.sendmail(mail.sender, [DESK], mail.raw)
            out.codes[550 if errors else 250] += 1
        except aiosmtplib.SMTPResponseException as exc:
            out.codes[exc.code] += 1
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError):
            out.codes[-1] += 1
            out.reconnects += 1
            client.close()
            await client.connect()
            continue
        out.latencies.append(time.perf_counter() - started)


async def drive(
    port: int,
    connections: int,
    warmup: list[Mail],
    timed: list[Mail],
    after_warmup: Callable[[], None] = lambda: None,
) -> Timed:
    """Open the connections, send the warm-up batch, then time the rest (``after_warmup``
    is called in between: the caller reads the server's CPU there)."""
    clients = await asyncio.gather(*(_connect(port) for _ in range(connections)))
    try:
        out = Outcome()
        work = iter(warmup)
        await asyncio.gather(*(_worker(c, port, work, out) for c in clients))
        after_warmup()
        out = Outcome()
        work = iter(timed)
        started = time.perf_counter()
        cpu = time.process_time()
        await asyncio.gather(*(_worker(c, port, work, out) for c in clients))
        return Timed(out, time.perf_counter() - started, time.process_time() - cpu)
    finally:
        for client in clients:
            if client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()


@dataclass(frozen=True, slots=True)
class Timed:
    outcome: Outcome
    seconds: float
    client_cpu: float


# ---- servers ----------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its child processes, every thread included.

    The children count: spoc converts mid-sized mail in a pool of worker processes
    (channels/mail_conversion.py), and their CPU is spent on the server's behalf. Live children
    are read one by one, children already reaped are in the process's own cutime/cstime.
    """
    total = cpu_seconds_of(Path(f"/proc/{pid}/stat"), reaped_children=True)
    for child in children(pid):
        try:
            total += cpu_seconds(child)
        except OSError:  # the child exited meanwhile
            continue
    return total


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (those of every thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the main thread (the event loop), of every other thread added up, and of
    the child processes (the conversion pool)."""
    out = {"loop": 0.0, "others": 0.0, "children": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out["loop" if task.name == str(pid) else "others"] += cpu_seconds_of(task / "stat")
        except OSError:  # the thread ended meanwhile
            continue
    out["children"] = cpu_seconds(pid) - out["loop"] - out["others"]
    return out


def cpu_seconds_of(stat: Path, reaped_children: bool = False) -> float:
    """utime + stime from a /proc stat file; with ``reaped_children`` cutime + cstime too."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if reaped_children:
        used += int(fields[13]) + int(fields[14])
    return used / CLK_TCK


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds:.0f} s")


def start_sink(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_sink", str(port)])
    wait_for_port(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def spoc_config(
    db_url: str, smtp: int, http: int, relay: int, acks: str, triage: str = "on"
) -> str:
    """A ``config.toml`` for one benchmarked ``spoc serve`` (``triage``: ``on`` is the shipped
    classifier, ``off`` rules only)."""
    enabled, global_per_minute = ACK_MODES[acks]
    classifier = "wordllama" if triage == "on" else "off"
    return f"""# written by bench/smtp_intake.py
[server]
http_host = "127.0.0.1"
http_port = {http}
[database]
url = "{db_url}"
[triage]
classifier = "{classifier}"
[email]
address = "{DESK}"
aliases = ["helpdesk@example.com", "cs@example.com"]
[smtp]
host = "127.0.0.1"
port = {smtp}
max_message_bytes = {MAX_MESSAGE_BYTES}
max_connections = 200
[outbound_smtp]
host = "127.0.0.1"
port = {relay}
[acks]
enabled = {str(enabled).lower()}
per_sender_per_hour = 5
global_per_minute = {global_per_minute}
[[groups]]
name = "service-desk"
tier = 1
[[groups]]
name = "customer-support"
tier = 1.5
[[routing]]
when = {{ subject_matches = "(?i)invoice|order|billing" }}
group = "customer-support"
"""


def _run_sink_server(
    port: int, around: Callable[[], AbstractAsyncContextManager[None]] | None = None
) -> None:
    """``_sink PORT``: the bare aiosmtpd sink (also the ack relay in spoc runs). ``around``: a
    context entered in the sink's loop while it serves (``bench/loop_lag.py``'s lag sampler)."""
    from aiosmtpd.smtp import SMTP, Envelope, Session  # only the server processes need it

    class Sink:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Sink()

        def protocol() -> SMTP:
            return SMTP(
                handler,
                data_size_limit=MAX_MESSAGE_BYTES,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname="sink.bench",
            )

        server = await loop.create_server(protocol, "127.0.0.1", port)
        stopped = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
        async with around() if around is not None else contextlib.nullcontext():
            await stopped.wait()
        server.close()

    asyncio.run(main())


# ---- one measured run -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Result:
    target: str
    connections: int
    sent: int
    ok: int
    seconds: float
    server_cpu: float  # seconds, the server process under test (all threads)
    threads: dict[str, float]  # CPU seconds: the loop thread, all other threads
    relay_cpu: float
    client_cpu: float
    p50_ms: float
    p99_ms: float
    failures: dict[int, int]
    stored: int | None  # contacts of this run found in the database afterwards
    load: str

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def honest(self) -> bool:
        return self.stored is None or self.stored == self.ok


@dataclass(frozen=True, slots=True)
class Plan:
    messages: int
    warmup: int
    big_messages: int  # timed messages on the big database (0: as many as ``messages``)
    big_ratio: float
    acks: str
    workdir: Path
    profile: Path | None
    triage: str = "on"
    base_tree: Path | None = None  # target ``base``: spoc from these files


def count_contacts(db: Path, run_id: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM contacts WHERE external_id LIKE ?", (f"bench.{run_id}.%",)
        ).fetchone()
    return int(row[0])


def measure(target: str, connections: int, plan: Plan, db: Path | None) -> Result:
    run_id = f"{os.getpid()}x{time.time_ns() % 10**12}"
    messages, warmups = plan.messages, plan.warmup
    if target == "spoc-big" and plan.big_messages:
        messages, warmups = plan.big_messages, max(plan.big_messages // 10, 2 * connections)
    warmup = build_mails(f"{run_id}w", warmups, plan.big_ratio)
    timed = build_mails(run_id, messages, plan.big_ratio)
    port = free_port()
    relay: subprocess.Popen[bytes] | None = None
    log = None
    if target == "sink":
        server = start_sink(port)
    else:
        assert db is not None
        relay_port, http = free_port(), free_port()
        relay = start_sink(relay_port)
        config = plan.workdir / f"{target}.toml"
        config.write_text(
            spoc_config(f"sqlite:///{db}", port, http, relay_port, plan.acks, plan.triage),
            encoding="utf-8",
        )
        log = (plan.workdir / f"{target}-{connections}.log").open("ab")
        tree = plan.base_tree if target == "base" and plan.base_tree else HERE.parent
        server = subprocess.Popen(  # from ``tree``: ``-m`` puts the working directory first
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=log,
            stderr=log,
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
        )
        wait_for_port(port, server)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        if plan.profile is not None and target != "sink":
            profiler = start_profiler(server.pid, profile_path(plan.profile, target, connections))
        # The server's CPU from the end of the warm-up on: start-up, first-call costs and the
        # warm-up's own messages are not the timed messages' (until stop 18 they were counted).
        before: dict[str, float] = {}

        def after_warmup() -> None:
            before["cpu"] = cpu_seconds(server.pid)
            before.update(thread_cpu(server.pid))
            before["relay"] = cpu_seconds(relay.pid) if relay else 0.0

        timed_run = asyncio.run(drive(port, connections, warmup, timed, after_warmup))
        server_cpu = cpu_seconds(server.pid) - before["cpu"]
        threads = {k: v - before[k] for k, v in thread_cpu(server.pid).items()}
        relay_cpu = (cpu_seconds(relay.pid) - before["relay"]) if relay else 0.0
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        code = stop(server)
        if relay is not None:
            stop(relay)
        if log is not None:
            log.close()
    if code != 0:
        raise RuntimeError(f"{target} server exited with {code}")
    if timed_run.outcome.codes[250] != messages and log is not None:
        tail = Path(log.name).read_text(errors="replace").splitlines()[-5:]
        print("\n".join(["server log tail:", *tail]), file=sys.stderr)
    out = timed_run.outcome
    lat = sorted(out.latencies) or [0.0]
    return Result(
        target=target,
        connections=connections,
        sent=messages,
        ok=out.codes[250],
        seconds=timed_run.seconds,
        server_cpu=server_cpu,
        threads=threads,
        relay_cpu=relay_cpu,
        client_cpu=timed_run.client_cpu,
        p50_ms=1000 * lat[len(lat) // 2],
        p99_ms=1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        failures={c: n for c, n in out.codes.items() if c != 250},
        stored=None if db is None else count_contacts(db, run_id),
        load=load,
    )


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy samples every thread of the server (raw collapsed stacks, idle excluded)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    proc = subprocess.Popen(
        [*command, "--threads", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach before the load starts
    return proc


# Leaf frames py-spy counts as active although the thread waits for work.
OURS = ("router/", "normalizer/", "channels/", "gateway/", "sqlalchemy/engine/base.py")
_LINE = re.compile(r":\d+\)$")
IDLE_FRAMES = ("_worker (concurrent/futures/thread.py:81)", "EpollSelector.select (")


def profile_path(base: Path, target: str, connections: int) -> Path:
    return base.with_name(f"{base.stem}-{target}-{connections}{base.suffix}")


def _package(frame: str) -> str:
    """``fn (sqlalchemy/engine/base.py:12)`` -> ``sqlalchemy``; stdlib modules by module name."""
    where = frame.rpartition(" (")[2]
    path = where.split(":", 1)[0]
    return path.split("/", 1)[0].removesuffix(".py") if "/" in path else path.removesuffix(".py")


def summarize_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive shares per function from py-spy's collapsed stacks."""
    packages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_FRAMES):
            idle += count
            continue
        total += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for function in {_LINE.sub(")", frame) for frame in frames[1:]}:
            inclusive[function] += count
    lines = [f"{total} busy samples ({idle} more idle in a pool's queue.get or epoll)"]
    lines += [f"  thread {100 * n / total:5.1f}%  {name}" for name, n in threads.most_common(6)]
    lines.append("self time by package or stdlib module:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in packages.most_common(15)]
    lines.append("self time:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive (our code and the database layer):")
    ours = [(f, n) for f, n in inclusive.most_common() if f.split(" (", 1)[-1].startswith(OURS)]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours[:top]]
    return "\n".join(lines)


# ---- the report -------------------------------------------------------------------------------
def row(r: Result) -> str:
    ok = "" if r.honest else f"  STORED {r.stored} != 250s {r.ok}"
    fails = f" fail={r.failures}" if r.failures else ""
    per_msg = 1000 * r.server_cpu / max(r.ok, 1)
    busy = " ".join(f"{name} {100 * cpu / r.seconds:.0f}%" for name, cpu in r.threads.items())
    return (
        f"{r.target:9} {r.connections:5d} {r.rate:9.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} "
        f"{per_msg:9.2f} {100 * r.server_cpu / r.seconds:6.0f}% {r.relay_cpu:6.1f}s "
        f"{100 * r.client_cpu / r.seconds:6.0f}%  {r.load}{fails}{ok}  threads: {busy}"
    )


HEADER = (
    f"{'target':9} {'conns':>5} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/msg':>9} "
    f"{'server':>7} {'relay':>7} {'client':>7}  loadavg"
)


def report(results: list[Result], connections: list[int], big: bool) -> list[str]:
    lines = ["", "medians over repeats (server CPU per message, and its loop/others/children):"]
    for conns in connections:
        runs = {
            t: [r for r in results if r.target == t and r.connections == conns]
            for t in ("sink", "spoc", "spoc-big", "base")
        }
        runs = {t: rs for t, rs in runs.items() if rs}
        rates = {t: statistics.median(r.rate for r in rs) for t, rs in runs.items()}
        cpu = {t: statistics.median(cpu_ms(r) for r in rs) for t, rs in runs.items()}
        text = ", ".join(f"{t} {v:.0f} msg/s {cpu[t]:.2f} ms" for t, v in rates.items())
        ratios = [f"{t}/sink = {rates[t] / rates['sink']:.3f}" for t in rates if "sink" in rates]
        ratios += [f"sink/{t} cpu = {cpu['sink'] / cpu[t]:.3f}" for t in cpu if "sink" in cpu]
        if "base" in cpu and "spoc" in cpu:
            ratios.append(f"spoc/base cpu = {cpu['spoc'] / cpu['base']:.3f}")
        if big and "spoc-big" in rates:
            ratios.append(f"big/empty = {rates['spoc-big'] / rates['spoc']:.3f}")
        lines.append(f"  {conns:3d} connections: {text}")
        lines.append(f"      {'; '.join(r for r in ratios if not r.startswith('sink/sink'))}")
        for t, rs in runs.items():
            if t != "sink":
                split = {
                    name: statistics.median(1000 * r.threads[name] / max(r.ok, 1) for r in rs)
                    for name in ("loop", "others", "children")
                }
                lines.append(f"      {t}: " + " ".join(f"{k} {v:.2f}" for k, v in split.items()))
    return lines


def cpu_ms(r: Result) -> float:
    return 1000 * r.server_cpu / max(r.ok, 1)


def machine() -> str:
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"aiosmtplib {aiosmtplib.__version__}, {platform.machine()}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_sink"]:
        _run_sink_server(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="timed messages per run")
    parser.add_argument("--warmup", type=int, default=300, help="untimed messages first")
    parser.add_argument("--connections", default="8,32", help="comma-separated counts")
    parser.add_argument("--big-ratio", type=float, default=0.1, help="share of ~100 KB mails")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--acks", choices=sorted(ACK_MODES), default="shipped")
    parser.add_argument(
        "--triage", choices=("on", "off"), default="on", help="the classifier (shipped: on)"
    )
    parser.add_argument("--targets", default="sink,spoc", help="sink,spoc,base (spoc-big via --db)")
    parser.add_argument("--db", type=Path, help="the big database, kept between runs")
    parser.add_argument(
        "--big-messages", type=int, default=0, help="timed messages on --db (default --messages)"
    )
    parser.add_argument("--seed-tickets", type=int, default=0, help="fill --db up to N tickets")
    parser.add_argument("--profile", type=Path, help="py-spy the spoc server into this file")
    parser.add_argument(
        "--base-tree",
        type=Path,
        help="target 'base': spoc from this folder (git archive COMMIT | tar -x -C DIR)",
    )
    args = parser.parse_args(argv)
    connections = [int(c) for c in args.connections.split(",")]
    targets = args.targets.split(",") + (["spoc-big"] if args.db else [])
    if "base" in targets and args.base_tree is None:
        parser.error("target 'base' needs --base-tree DIR")
    print("bench/smtp_intake.py", " ".join(argv))
    print(machine())
    if args.db is not None:
        have = count_tickets(args.db)
        if have < args.seed_tickets:
            import seed_tickets  # bench/ is on sys.path when run as a script

            started = time.perf_counter()
            seed_tickets.seed(args.db, args.seed_tickets - have)
            took = time.perf_counter() - started
            print(f"seeded {args.seed_tickets - have:,} tickets in {took:.0f} s")
        print(f"big database: {args.db} with {count_tickets(args.db):,} tickets")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="spoc-bench-") as tmp:
        plan = Plan(
            args.messages,
            args.warmup,
            args.big_messages,
            args.big_ratio,
            args.acks,
            Path(tmp),
            args.profile,
            args.triage,
            args.base_tree.resolve() if args.base_tree else None,
        )
        big = f"; {args.big_messages} on the big database" if args.big_messages else ""
        print(
            f"{args.messages} timed + {args.warmup} warm-up messages per run, "
            f"{args.big_ratio:.0%} ~100 KB, acks {args.acks}, triage {args.triage}{big}"
        )
        print(HEADER)
        for _ in range(args.repeat):
            for conns in connections:
                for target in targets:
                    db = None
                    if target in ("spoc", "base"):
                        db = Path(tmp) / f"empty-{time.time_ns()}.db"
                    elif target == "spoc-big":
                        db = args.db
                    result = measure(target, conns, plan, db)
                    results.append(result)
                    print(row(result), flush=True)
                    if db is not None and target in ("spoc", "base"):
                        for leftover in Path(tmp).glob(f"{db.name}*"):
                            leftover.unlink()
    print("\n".join(report(results, connections, "spoc-big" in targets)))
    if args.profile is not None:
        for conns in connections:
            for target in targets:
                path = profile_path(args.profile, target, conns)
                if target != "sink" and path.exists():
                    print(f"\nprofile of the {target} server at {conns} connections ({path}):")
                    print(summarize_profile(path))
    return 0 if all(r.honest and not r.failures for r in results) else 1


def count_tickets(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM tickets").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


if __name__ == "__main__":
    sys.exit(main())
