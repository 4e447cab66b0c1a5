"""Slack ack latency: how long ``POST /slack/events`` takes to answer at a steady event rate.

Slack wants an answer within 3 s; spoc answers only after the contact is committed
(``process_before_response``), so the answer time is the whole intake: signature, bolt,
``users.info`` (cached per user), routing and the SQLite commit.

The real ``python -m gateway serve`` runs in a process of its own on a fresh SQLite database,
with ``[slack]`` pointed at the fake Web API of ``tests/fakes/slack_api.py`` served by this
process (every call answered ``--api-latency-ms`` late, like the real Slack API). This
process is the load: an open loop that starts one signed request every 1/``--rate`` seconds
whether or not the earlier ones were answered (so a slow server cannot slow the load down and
hide its own latency). The mix: new DMs from ``--users`` people (their first message pays for a
``users.info``), replies in the thread of an earlier DM, and Slack retries of an event already
answered (``X-Slack-Retry-Num``; the dedupe path). After the run the database must hold one
contact per distinct message, or the run is reported as failed.

    python bench/slack_events.py --rate 50 --seconds 20 --users 200 --api-latency-ms 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from slack_sdk.signature import SignatureVerifier

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ports import free_port  # noqa: E402  (bench/ is on sys.path when run as a script)

from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlackAPI  # noqa: E402

SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-bench-0000"


def start_spoc(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPOC_SLACK_SIGNING_SECRET": SECRET, "SPOC_SLACK_BOT_TOKEN": BOT_TOKEN}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            cwd=HERE.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def config_text(db: Path, http_port: int, smtp_port: int, api: FakeSlackAPI) -> str:
    return f"""
[server]
http_host = "127.0.0.1"
http_port = {http_port}
[database]
url = "sqlite:///{db}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
[outbound_smtp]
host = "127.0.0.1"
port = {free_port()}
[slack]
enabled = true
mode = "http"
api_base_url = "{api.base_url}"
[api]
enabled = false
"""


@dataclass
class Load:
    users: int
    rng: random.Random
    ts: int = 1_700_000_000
    roots: list[tuple[str, str]] = field(default_factory=list)  # (channel, ts) of sent DMs
    sent: list[bytes] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)

    def next_body(self) -> tuple[bytes, dict[str, str]]:
        pick = self.rng.random()
        if pick < 0.05 and self.sent:  # a Slack retry of an event already answered
            return self.rng.choice(self.sent), {"X-Slack-Retry-Num": "1"}
        self.ts += 1
        ts = f"{self.ts}.000100"
        user = f"U{self.rng.randrange(self.users):06d}"
        channel = "D" + user[1:]
        event = {"type": "message", "channel": channel, "channel_type": "im", "user": user,
                 "text": "My laptop will not boot, it beeps three times", "ts": ts}  # fmt: skip
        if pick < 0.35 and self.roots:
            channel, root = self.rng.choice(self.roots)
            event.update(channel=channel, user="U" + channel[1:], thread_ts=root)
        else:
            self.roots.append((channel, ts))
        self.messages.add(f"{event['channel']}:{ts}")
        body = json.dumps(
            {"team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
             "event_id": f"Ev{self.ts}", "event_time": self.ts, "event": event,
             "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}]}
        ).encode()  # fmt: skip
        self.sent.append(body)
        return body, {}


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, extra: dict[str, str]
) -> tuple[float, int]:
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
            timestamp=stamp, body=body
        ),
        **extra,
    }
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return time.perf_counter() - started, response.status


async def wait_ready(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"spoc did not become ready at {url}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> int:
    api = FakeSlackAPI(delay_seconds=args.api_latency_ms / 1000)
    await api.start()
    for n in range(args.users):
        api.add_user(f"U{n:06d}", f"user{n}@example.org", f"User {n}")
    work = Path(tempfile.mkdtemp(prefix="spoc-slack-bench-"))
    db, http_port = work / "spoc.db", free_port()
    config = work / "config.toml"
    config.write_text(config_text(db, http_port, free_port(), api), encoding="utf-8")
    server = start_spoc(config, work / "spoc.log")
    try:
        base = f"http://127.0.0.1:{http_port}"
        await wait_ready(base + "/readyz")
        load = Load(args.users, random.Random(args.seed))
        timings: list[float] = []
        statuses: dict[int, int] = {}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            # Warm-up (not counted): the first request pays for bolt's auth.test.
            await one(session, base + "/slack/events", *load.next_body())
            cpu_before = cpu_seconds(server.pid)
            total = int(args.rate * args.seconds)
            interval = 1.0 / args.rate
            start = time.perf_counter()
            tasks = []
            for n in range(total):
                delay = start + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(
                    asyncio.create_task(one(session, base + "/slack/events", *load.next_body()))
                )
            for elapsed, status in await asyncio.gather(*tasks):
                timings.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
            wall = time.perf_counter() - start
            cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 60)
        await api.stop()
    stored = (
        sqlite3.connect(db)
        .execute("SELECT count(*) FROM contacts WHERE channel = 'slack' AND direction = 'in'")
        .fetchone()[0]
    )
    ok = statuses == {200: len(timings)} and stored == len(load.messages)
    ms = [t * 1000 for t in timings]
    print(f"host: {platform.node()} python {platform.python_version()} cpus {os.cpu_count()}")
    print(
        f"rate {args.rate}/s for {args.seconds}s: {len(ms)} requests in {wall:.1f}s, "
        f"{len(load.messages)} distinct messages, {stored} stored, statuses {statuses}, "
        f"users {args.users}, Slack API latency {args.api_latency_ms} ms"
    )
    p50, p90, p99 = (percentile(ms, q) for q in (50, 90, 99))
    per_request = cpu / len(ms) * 1000
    print(f"spoc CPU: {cpu:.2f} s, {per_request:.2f} ms per request, {cpu / wall:.0%} of a core")
    print(f"ack ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(ms):.1f}")
    by_method: dict[str, int] = {}
    for call in api.calls:
        by_method[call.method] = by_method.get(call.method, 0) + 1
    print("Slack API calls:", ", ".join(f"{m} {n}" for m, n in sorted(by_method.items())))
    print("RESULT", "ok" if ok else "FAILED (answers or stored contacts do not match)")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--api-latency-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
