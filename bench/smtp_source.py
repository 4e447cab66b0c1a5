"""SMTP intake with Postfix's ``smtp-source`` as the load generator: rate against connections.

The servers are the ones of ``bench/smtp_intake.py`` (each in a process of its own): the bare
aiosmtpd ``sink`` (the baseline) and the real ``python -m gateway serve`` (``spoc``) on SQLite
or on a throwaway PostgreSQL 15 (``--database postgres``, ``tests/support/pgcluster.py``). The
client is Debian's ``/usr/sbin/smtp-source`` (package ``postfix``, no daemon started): C parallel
sessions, each sending its share of the messages over one connection (``-d``). Every message is
``--size`` bytes of body behind smtp-source's own headers, with its own Message-ID
(``<pid.session.seq@bench>``); smtp-source has one sender for all of them, so after the first
ticket the router threads nothing (no In-Reply-To), opens a ticket per message and refuses the
acknowledgement past the per-sender limit.

For each round and each connection count the targets alternate; each run reports msg/s (wall
time of smtp-source), server CPU per message (``/proc/<pid>/stat``, every thread), and on
PostgreSQL the database server's CPU too. spoc runs check that the database holds as many new
contacts as smtp-source completed transactions.

Extra targets:

``spoc-2`` (``--database postgres``)
    two ``spoc serve`` processes on different ports sharing the one database; two smtp-source
    processes, C/2 sessions and half of the messages each; the rate is all messages over the
    slower of the two.
``spoc-big`` (with ``--big-tickets N``)
    spoc on a second database already holding N seeded tickets (``bench/seed_tickets.py``).
``base`` (with ``--base-tree DIR``)
    spoc from another commit's files (``git archive COMMIT | tar -x -C DIR``): before/after a
    change, in the same run.

    python bench/smtp_source.py --connections 1,2,4,8,16,32,64 --messages 2000 --repeat 3 \\
        --plot docs/img/smtp-source-rate.png
    python bench/smtp_source.py --database postgres --targets sink,spoc,spoc-2 \\
        --connections 8,32 --messages 3000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import smtp_intake as si  # bench/ is on sys.path when run as a script
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support.pgcluster

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SENDER = "monitoring@bench.example.org"


@dataclass(frozen=True, slots=True)
class Run:
    target: str
    connections: int
    sent: int
    ok: int
    seconds: float
    server_cpu: float  # the spoc (or sink) processes, seconds
    db_cpu: float  # the PostgreSQL server, seconds (0 on SQLite)
    loop_cpu: float  # the servers' main threads (their event loops), seconds
    stored: int | None
    load: str

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu / max(self.ok, 1)

    @property
    def loop_ms(self) -> float:
        return 1000 * self.loop_cpu / max(self.ok, 1)


# ---- the load generator -----------------------------------------------------------------------
def smtp_source(port: int, sessions: int, messages: int, size: int) -> subprocess.Popen[bytes]:
    command = [
        SMTP_SOURCE,
        "-d",  # one connection per session, reused for its messages
        "-s", str(sessions),
        "-m", str(messages),
        "-l", str(size),
        "-S", "Laptop cannot reach the VPN since this morning",
        "-f", SENDER,
        "-t", si.DESK,
        "-M", "bench",
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def drive(ports: list[int], sessions: int, messages: int, size: int) -> tuple[int, float]:
    """smtp-source against each port at once (sessions and messages split); (ok, seconds)."""
    share = max(sessions // len(ports), 1)
    started = time.perf_counter()
    procs = [smtp_source(p, share, messages // len(ports), size) for p in ports]
    ok = 0
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"smtp-source exited {proc.returncode}: {err.decode()[-500:]}")
        ok += messages // len(ports)
    return ok, time.perf_counter() - started


# ---- PostgreSQL -------------------------------------------------------------------------------
def postgres_cpu(cluster: object | None) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its live backends, and every backend
    that has exited (reaped children count in the postmaster's cutime/cstime)."""
    if cluster is None:
        return 0.0
    datadir = Path(cluster.datadir)  # type: ignore[attr-defined]
    return si.cpu_seconds(int((datadir / "postmaster.pid").read_text().split()[0]))


@contextmanager
def database(kind: str, workdir: Path, name: str) -> Iterator[str]:
    """A fresh, migrated database URL: a SQLite file, or a new database in the cluster."""
    if kind == "sqlite":
        path = workdir / f"{name}-{time.time_ns()}.db"
        yield f"sqlite:///{path}"
        for leftover in workdir.glob(f"{path.name}*"):
            leftover.unlink()
        return
    assert CLUSTER is not None
    db = CLUSTER.create_database()
    url = CLUSTER.url(db)
    migrate(url, workdir)
    try:
        yield url
    finally:
        CLUSTER.drop_database(db)


def migrate(url: str, workdir: Path) -> None:
    config = workdir / "migrate.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "gateway", "db", "upgrade", "--config", str(config)],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )


CLUSTER = None  # the PostgreSQL cluster of this run, if any


def count_contacts(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one())
    finally:
        engine.dispose()


# ---- servers ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Plan:
    messages: int
    warmup: int
    size: int
    acks: str
    triage: str
    database: str
    workdir: Path
    big_url: str | None
    base_tree: Path | None = None  # target ``base``: spoc from these files


def start_spoc(
    url: str, plan: Plan, stack: ExitStack, tag: str, tree: Path = REPO
) -> tuple[subprocess.Popen[bytes], int]:
    """``spoc serve`` from ``tree`` (this checkout, or ``--base-tree``: another commit's files,
    imported first because ``python -m`` puts the working directory first on the path)."""
    port, http, relay_port = si.free_port(), si.free_port(), si.free_port()
    relay = si.start_sink(relay_port)
    stack.callback(si.stop, relay)
    config = plan.workdir / f"{tag}.toml"
    text = si.spoc_config(url, port, http, relay_port, plan.acks, plan.triage)
    config.write_text(text, encoding="utf-8")
    log = stack.enter_context((plan.workdir / f"{tag}.log").open("ab"))
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stdout=log,
        stderr=log,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    stack.callback(si.stop, server)
    si.wait_for_port(port, server)
    return server, port


def measure(target: str, connections: int, plan: Plan) -> Run:
    with ExitStack() as stack:
        url: str | None = None
        if target == "sink":
            port = si.free_port()
            servers = [si.start_sink(port)]
            stack.callback(si.stop, servers[0])
            ports = [port]
        else:
            if target == "spoc-big":
                assert plan.big_url is not None
                url = plan.big_url
            else:
                url = stack.enter_context(database(plan.database, plan.workdir, target))
            count = 2 if target == "spoc-2" else 1
            tree = plan.base_tree if target == "base" and plan.base_tree else REPO
            started = [start_spoc(url, plan, stack, f"{target}-{i}", tree) for i in range(count)]
            servers = [s for s, _ in started]
            ports = [p for _, p in started]
        drive(ports, len(ports) * max(connections // 4, 1), plan.warmup, plan.size)
        before = count_contacts(url) if url else None
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        cpu0 = sum(si.cpu_seconds(s.pid) for s in servers)
        loop0 = sum(si.thread_cpu(s.pid)["loop"] for s in servers)
        db0 = postgres_cpu(CLUSTER if url and plan.database == "postgres" else None)
        ok, seconds = drive(ports, connections, plan.messages, plan.size)
        cpu = sum(si.cpu_seconds(s.pid) for s in servers) - cpu0
        loop = sum(si.thread_cpu(s.pid)["loop"] for s in servers) - loop0
        db = postgres_cpu(CLUSTER if url and plan.database == "postgres" else None) - db0
        stored = count_contacts(url) - before if url and before is not None else None
    return Run(target, connections, plan.messages, ok, seconds, cpu, db, loop, stored, load)


# ---- report -----------------------------------------------------------------------------------
def row(r: Run) -> str:
    check = "" if r.stored is None or r.stored == r.ok else f"  STORED {r.stored} != {r.ok}"
    db = f"{1000 * r.db_cpu / max(r.ok, 1):8.2f}" if r.db_cpu else f"{'-':>8}"
    return (
        f"{r.target:9} {r.connections:5d} {r.rate:9.0f} {r.cpu_ms:9.2f} {r.loop_ms:8.2f} {db} "
        f"{100 * r.server_cpu / r.seconds:6.0f}%  {r.load}{check}"
    )


HEADER = (
    f"{'target':9} {'conns':>5} {'msg/s':>9} {'cpu ms/msg':>9} {'loop ms':>8} {'db ms/msg':>8} "
    f"{'server':>7}"
)


def medians(runs: list[Run], target: str, conns: int) -> tuple[float, float] | None:
    mine = [r for r in runs if r.target == target and r.connections == conns]
    if not mine:
        return None
    return statistics.median(r.rate for r in mine), statistics.median(r.cpu_ms for r in mine)


def loop_median(runs: list[Run], target: str, conns: int) -> float:
    mine = [r.loop_ms for r in runs if r.target == target and r.connections == conns]
    return statistics.median(mine)


def report(runs: list[Run], targets: list[str], connections: list[int]) -> list[str]:
    lines = ["", "medians over rounds (rate msg/s, server CPU ms/msg; ratios against the sink):"]
    for conns in connections:
        sink = medians(runs, "sink", conns)
        parts = []
        for target in targets:
            got = medians(runs, target, conns)
            if got is None:
                continue
            rate, cpu = got
            part = f"{target} {rate:.0f} msg/s {cpu:.2f} ms"
            if sink is not None and target != "sink":
                part += f" (rate {rate / sink[0]:.3f}, sink/{target} CPU {sink[1] / cpu:.3f})"
            parts.append(part)
        spoc, two, big, base = (
            medians(runs, t, conns) for t in ("spoc", "spoc-2", "spoc-big", "base")
        )
        if spoc and base:
            parts.append(f"base/spoc CPU per message {base[1] / spoc[1]:.3f}")
            loops = [loop_median(runs, t, conns) for t in ("base", "spoc")]
            parts.append(f"loop ms/msg base {loops[0]:.2f} spoc {loops[1]:.2f}")
        if spoc and two:
            parts.append(f"spoc-2/spoc rate {two[0] / spoc[0]:.3f}")
        if spoc and big:
            parts.append(f"spoc-big/spoc rate {big[0] / spoc[0]:.3f}")
        lines.append(f"  {conns:3d} connections: " + "; ".join(parts))
    return lines


def plot(runs: list[Run], targets: list[str], connections: list[int], out: Path) -> None:
    import matplotlib  # the optional extra ``bench``

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for target in targets:
        points = [(c, medians(runs, target, c)) for c in connections]
        xs = [c for c, m in points if m is not None]
        ys = [m[0] for _, m in points if m is not None]
        ax.plot(xs, ys, marker="o", label=target)
        lows = [min(r.rate for r in runs if r.target == target and r.connections == c) for c in xs]
        highs = [max(r.rate for r in runs if r.target == target and r.connections == c) for c in xs]
        ax.fill_between(xs, lows, highs, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xticks(connections, [str(c) for c in connections])
    ax.set_xlabel("smtp-source sessions (connections)")
    ax.set_ylabel("messages per second (median; band: min-max)")
    ax.set_title(f"SMTP intake, smtp-source, {runs[0].sent} msgs of {PLOT_SIZE} B per run")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


PLOT_SIZE = 0


def main(argv: list[str] | None = None) -> int:
    global CLUSTER, PLOT_SIZE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="1,4,16,64", help="comma-separated counts")
    parser.add_argument("--messages", type=int, default=2000, help="timed messages per run")
    parser.add_argument("--warmup", type=int, default=200, help="untimed messages first")
    parser.add_argument("--size", type=int, default=4096, help="body bytes per message (-l)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--targets", default="sink,spoc", help="sink,spoc,spoc-2,spoc-big,base")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--acks", choices=sorted(si.ACK_MODES), default="shipped")
    parser.add_argument("--triage", choices=("on", "off"), default="on")
    parser.add_argument("--big-tickets", type=int, default=0, help="seed spoc-big's database")
    parser.add_argument(
        "--base-tree",
        type=Path,
        help="target 'base': spoc from this folder (git archive COMMIT | tar -x -C DIR)",
    )
    parser.add_argument("--plot", type=Path, help="write rate against connections as a PNG")
    args = parser.parse_args(argv)
    connections = [int(c) for c in args.connections.split(",")]
    targets = args.targets.split(",")
    PLOT_SIZE = args.size
    if "spoc-2" in targets and args.database != "postgres":
        parser.error("spoc-2 needs --database postgres (two instances share one database)")
    print("bench/smtp_source.py", " ".join(sys.argv[1:] if argv is None else argv))
    print(si.machine(), f"smtp-source {SMTP_SOURCE}", f"database {args.database}")
    runs: list[Run] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="spoc-smtp-source-") as tmp:
        workdir = Path(tmp)
        if args.database == "postgres":
            from tests.support.pgcluster import PostgresCluster

            CLUSTER = PostgresCluster.start()
            stack.callback(CLUSTER.stop)
            print(f"PostgreSQL 15 on port {CLUSTER.port} (fsync off: a throwaway cluster)")
        big_url = None
        if "spoc-big" in targets:
            big_url = stack.enter_context(database(args.database, workdir, "big"))
            import seed_tickets

            started = time.perf_counter()
            seed_tickets.seed_url(big_url, args.big_tickets)
            took = time.perf_counter() - started
            print(f"seeded {args.big_tickets:,} tickets in {took:.0f} s ({args.database})")
        plan = Plan(
            args.messages,
            args.warmup,
            args.size,
            args.acks,
            args.triage,
            args.database,
            workdir,
            big_url,
            args.base_tree,
        )
        print(f"{args.messages} timed + {args.warmup} warm-up messages per run, "
              f"{args.size} B bodies, acks {args.acks}, triage {args.triage}")  # fmt: skip
        print(HEADER)
        for _ in range(args.repeat):
            for conns in connections:
                for target in targets:
                    run = measure(target, conns, plan)
                    runs.append(run)
                    print(row(run), flush=True)
    print("\n".join(report(runs, targets, connections)))
    if args.plot is not None:
        plot(runs, targets, connections, args.plot)
        print(f"plot: {args.plot}")
    honest = all(r.stored is None or r.stored == r.ok for r in runs)
    return 0 if honest else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
