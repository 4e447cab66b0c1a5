"""Event-loop lag of ``spoc serve`` while 250 KB HTML messages are parsed, against plain ones.

The server is the real gateway (``python -m gateway serve`` on SQLite, as in
``bench/smtp_intake.py``), started through this script's ``_serve`` command, which wraps
``gateway.serve.serve`` with a sampler task: it sleeps 1 ms at a time and records by how much
each wake-up came late (the time some callback held the loop). Nothing in the gateway is
changed for it; the samples are written to a file when the server stops.

Phases, one after the other, against one server: ``idle`` (no load), ``plain`` (~4 KB
text/plain mails), ``attach`` (~100 KB mails, a few lines of text and a 72 KB PDF in base64:
those spoc converts on the loop) and ``html`` (~250 KB text/html mails without a text/plain
part, so every one is sanitised with nh3 and turned into text), each sent by
``--connections`` aiosmtplib clients. With ``--base-tree DIR`` a target ``base`` runs spoc
from another commit's files (``git archive COMMIT | tar -x -C DIR``) in the same rounds.
For each phase the script prints the lag's p50, p99 and maximum and the ratio of the html
phase to the plain one. Target: max and p99 under 20 ms in the html phase.

    python bench/loop_lag.py --messages 300 --connections 4 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import smtp_intake as si  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
TICK = 0.001  # the sampler's sleep

_WORDS = si._WORDS


# ---- in the server process --------------------------------------------------------------------
async def _sample(out: list[tuple[float, float]]) -> None:
    clock = time.perf_counter
    offset = time.time() - clock()
    while True:
        before = clock()
        await asyncio.sleep(TICK)
        now = clock()
        out.append((offset + now, now - before - TICK))


@contextlib.asynccontextmanager
async def sampling(samples_file: Path) -> AsyncIterator[None]:
    """Sample the running loop's lag while inside; write the samples to the file at the end."""
    samples: list[tuple[float, float]] = []
    if os.environ.get("SPOC_BENCH_SLOW_CALLBACKS"):  # name what holds the loop (log file)
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = float(os.environ["SPOC_BENCH_SLOW_CALLBACKS"])
    sampler = asyncio.create_task(_sample(samples))
    try:
        yield
    finally:
        sampler.cancel()
        samples_file.write_text(json.dumps(samples))  # noqa: ASYNC240 - once, at the end


def _sink(port: int, samples_file: Path) -> int:
    """``_sink PORT FILE``: the bare aiosmtpd sink of ``bench/smtp_intake.py``, sampled."""
    si._run_sink_server(port, lambda: sampling(samples_file))
    return 0


def _serve(samples_file: Path, argv: list[str]) -> int:
    """``_serve FILE --config X``: ``spoc serve`` (from ``SPOC_BENCH_TREE`` if set) with the
    sampler beside it."""
    tree = os.environ.get("SPOC_BENCH_TREE", str(REPO))
    os.chdir(tree)
    sys.path.insert(0, tree)
    import gateway.serve
    from gateway.cli import main

    real = gateway.serve.serve
    if os.environ.get("SPOC_BENCH_CONVERT_ON_THREAD"):  # before: big mail converted on a thread
        import channels.smtp

        channels.smtp._PARSE_IN_PROCESS_MAX_BYTES = 0
    if os.environ.get("SPOC_BENCH_DATA_NO_YIELD"):  # before: DATA read without a pause
        import channels.smtp_data

        channels.smtp_data._YIELD_EVERY_BYTES = 1 << 62
    if os.environ.get("SPOC_BENCH_SWITCH_INTERVAL"):  # an experiment: the GIL's hand-over
        sys.setswitchinterval(float(os.environ["SPOC_BENCH_SWITCH_INTERVAL"]))

    async def sampled(config: object) -> int:
        async with sampling(samples_file):
            return await real(config)  # type: ignore[arg-type]

    gateway.serve.serve = sampled  # type: ignore[assignment]
    return main(["serve", *argv])


# ---- messages ---------------------------------------------------------------------------------
def html_body(rnd: random.Random, size: int) -> str:
    """Newsletter-like HTML: a style block, tables, lists, links, inline styles, one script."""
    parts = [
        "<!DOCTYPE html><html><head><title>Report</title><style>td{padding:2px}"
        ".x{color:#333}</style><script>var tracking = 1;</script></head><body>"
    ]
    total = len(parts[0])
    n = 0
    while total < size:
        words = " ".join(rnd.choice(_WORDS) for _ in range(14))
        n += 1
        block = (
            f'<div class="x" style="font-family:Arial;font-size:13px"><h3>Item {n}</h3>\n'
            f"<p>{words.capitalize()}. <b>{rnd.choice(_WORDS)}</b> &amp; "
            f'<a href="https://intranet.example.com/kb/{n}">{rnd.choice(_WORDS)}</a></p>\n'
            f"<table><tr><td>{rnd.choice(_WORDS)}</td><td>{n}</td><td>{words[:40]}</td></tr>"
            f"<tr><td>{rnd.choice(_WORDS)}</td><td>{n * 7}</td><td>&lt;ok&gt;</td></tr>"
            f"</table>\n<ul><li>{words[:30]}</li><li>{words[30:60]}</li></ul></div>\n"
        )
        parts.append(block)
        total += len(block)
    parts.append("</body></html>")
    return "".join(parts)


def build_html_mail(run_id: str, n: int, rnd: random.Random, size: int) -> si.Mail:
    sender = f"html{n}.{run_id}@bench.example.org"
    body = html_body(rnd, size).replace("\n", "\r\n")
    text = (
        f"From: Newsletter {n} <{sender}>\r\nTo: IT Service Desk <{si.DESK}>\r\n"
        f"Subject: Weekly report {n}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <html.{run_id}.{n}@bench.example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n"
    )
    return si.Mail(sender, text.encode(), big=True)


# ---- the run ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    start: float
    end: float
    messages: int
    rate: float


def lag_stats(samples: list[tuple[float, float]], phase: Phase) -> tuple[float, float, float, int]:
    """p50, p99 and max lag in ms of the samples inside the phase, and their count."""
    lags = sorted(1000 * lag for at, lag in samples if phase.start <= at <= phase.end)
    if not lags:
        return 0.0, 0.0, 0.0, 0
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    return statistics.median(lags), p99, lags[-1], len(lags)


async def _phase(name: str, send: Callable[[], Awaitable[si.Timed]]) -> Phase:
    start = time.time()
    timed = await send()
    return Phase(name, start, time.time(), timed.outcome.codes[250], timed.outcome.codes[250]
                 / timed.seconds)  # fmt: skip


def one_round(args: argparse.Namespace, workdir: Path, round_no: int) -> list[str]:
    """The sink, then spoc, each through the three phases; a line per target and phase."""
    lines: list[str] = []
    worst: dict[tuple[str, str], tuple[float, float]] = {}
    before = [name for name, on in (("spoc-thread", args.compare_thread),
                                    ("spoc-noyield", args.compare_no_yield)) if on]  # fmt: skip
    before += ["base"] if args.base_tree else []
    for target in ("sink", *before, "spoc"):
        for phase, (p50, p99, top, count, load) in run_target(target, args, workdir, round_no):
            worst[target, phase.name] = (p99, top)
            lines.append(
                f"{target:11} {phase.name:6} {phase.messages:6d} {phase.rate:8.1f} {p50:8.2f} "
                f"{p99:8.2f} {top:8.2f} {count:8d}  {load}"
            )
    spoc_html, spoc_plain, sink_html = worst["spoc", "html"], worst["spoc", "plain"], worst[
        "sink", "html"]  # fmt: skip
    lines.append(
        f"spoc html: p99 {spoc_html[0]:.1f} ms, max {spoc_html[1]:.1f} ms "
        f"({'under' if max(spoc_html) < 20 else 'NOT under'} 20 ms); "
        f"ratio to spoc plain p99 {spoc_html[0] / max(spoc_plain[0], 1e-9):.2f}, "
        f"to sink html p99 {spoc_html[0] / max(sink_html[0], 1e-9):.2f}"
    )
    for target in ("base", "spoc"):
        if (target, "attach") in worst:
            p99, top = worst[target, "attach"]
            lines.append(f"{target} attach: p99 {p99:.1f} ms, max {top:.1f} ms")
    return lines


Stats = tuple[float, float, float, int, str]


def run_target(
    target: str, args: argparse.Namespace, workdir: Path, round_no: int
) -> list[tuple[Phase, Stats]]:
    run_id = f"{os.getpid()}r{round_no}{target}x{time.time_ns() % 10**9}"
    rnd = random.Random(run_id)
    plain = si.build_mails(run_id, args.messages, 0.0)
    attach = si.build_mails(f"{run_id}a", args.messages, 1.0)
    html = [build_html_mail(run_id, n, rnd, args.html_bytes) for n in range(args.messages)]
    warm = si.build_mails(f"{run_id}w", 20, 0.0)
    port, http, relay_port = si.free_port(), si.free_port(), si.free_port()
    samples_file = workdir / f"lag-{target}-{round_no}.json"
    log = (workdir / f"lag-{target}-{round_no}.log").open("ab")
    relay = None
    if target == "sink":
        command = [sys.executable, __file__, "_sink", str(port), str(samples_file)]
    else:
        relay = si.start_sink(relay_port)
        config = workdir / f"lag-{target}-{round_no}.toml"
        db = f"sqlite:///{workdir}/lag-{target}-{round_no}.db"
        config.write_text(si.spoc_config(db, port, http, relay_port, "shipped", args.triage))
        command = [sys.executable, __file__, "_serve", str(samples_file), "--config", str(config)]
    env = dict(os.environ)
    if target == "spoc-thread":
        env["SPOC_BENCH_CONVERT_ON_THREAD"] = env["SPOC_BENCH_DATA_NO_YIELD"] = "1"
    elif target == "spoc-noyield":
        env["SPOC_BENCH_DATA_NO_YIELD"] = "1"
    elif target == "base":
        env["SPOC_BENCH_TREE"] = str(args.base_tree.resolve())
    server = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        si.wait_for_port(port, server)

        async def run() -> list[Phase]:
            await si.drive(port, 2, [], warm)
            idle_start = time.time()
            await asyncio.sleep(2.0)
            phases = [Phase("idle", idle_start, time.time(), 0, 0.0)]
            phases.append(
                await _phase("plain", lambda: si.drive(port, args.connections, [], plain))
            )
            phases.append(
                await _phase("attach", lambda: si.drive(port, args.connections, [], attach))
            )
            phases.append(await _phase("html", lambda: si.drive(port, args.connections, [], html)))
            return phases

        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        phases = asyncio.run(run())
    finally:
        si.stop(server)
        if relay is not None:
            si.stop(relay)
        log.close()
    samples = [(float(at), float(lag)) for at, lag in json.loads(samples_file.read_text())]
    return [(phase, (*lag_stats(samples, phase), load)) for phase in phases]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_sink"]:
        return _sink(int(argv[1]), Path(argv[2]))
    if argv[:1] == ["_serve"]:
        return _serve(Path(argv[1]), argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per phase")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--html-bytes", type=int, default=250_000, help="size of each HTML body")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--triage", choices=("on", "off"), default="on")
    parser.add_argument(
        "--compare-thread",
        action="store_true",
        help="also run spoc as before: big mail converted on a thread (not in the process pool), "
        "DATA read without pauses",
    )
    parser.add_argument(
        "--compare-no-yield",
        action="store_true",
        help="also run spoc with DATA read without pauses (conversion in the process pool)",
    )
    parser.add_argument(
        "--slow-callbacks",
        type=float,
        default=0,
        help="ms: asyncio debug mode logs every callback slower than this (diagnosis only)",
    )
    parser.add_argument("--keep", type=Path, help="copy the server logs into this folder")
    parser.add_argument(
        "--base-tree",
        type=Path,
        help="also run target 'base': spoc from this folder (git archive COMMIT | tar -x -C DIR)",
    )
    args = parser.parse_args(argv)
    print("bench/loop_lag.py", " ".join(argv))
    print(si.machine())
    if args.slow_callbacks:
        os.environ["SPOC_BENCH_SLOW_CALLBACKS"] = str(args.slow_callbacks / 1000)
    print(
        f"{'target':11} {'phase':6} {'msgs':>6} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'samples':>8}  loadavg"
    )
    with tempfile.TemporaryDirectory(prefix="spoc-lag-") as tmp:
        for round_no in range(args.repeat):
            print("\n".join(one_round(args, Path(tmp), round_no)), flush=True)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in Path(tmp).glob("*.log"):
                shutil.copy(log, args.keep / log.name)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
