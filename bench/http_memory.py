"""Peak memory of ``spoc serve`` while many big HTTP bodies arrive at once, with the body
budget (``[server] max_inflight_body_bytes``: ``--budget-mib``, by default its 3 MiB minimum)
and, as the baseline, so large that it never refuses (what every request holding its body at
once costs).

``--clients`` connections each send the headers and all but the last byte of a ``POST
/api/contacts`` body of ``--body-kib`` (a valid contact whose JSON is padded with spaces), all
at once; then every last byte is sent and every answer read. Without a budget the server holds
every body at once; with one, what does not fit is answered 503 before its body is read. The
figure is the growth of the server's peak RSS (``VmHWM`` after ``clear_refs``, as in
``bench/smtp_memory.py``) over the RSS before, in MiB and as a ratio of the two runs.

    python bench/http_memory.py --clients 40 --body-kib 1900 --budget-mib 16 --repeat 3

Linux only (``/proc``). Compare only figures of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ports import free_ports
from smtp_memory import proc_kib, with_server
from spoc_config import clean_environment, config_text, serve_command

TOKEN = "bench-token-0123456789"
UNBOUNDED = 1 << 40


def body(size: int, tag: str) -> bytes:
    """A valid contact of exactly ``size`` bytes: 900 KiB of text, then spaces."""
    data = json.dumps(
        {"from": {"email": f"{tag}@example.org"}, "subject": tag, "text": "x" * (900 * 1024)}
    ).encode()
    return data + b" " * (size - len(data))


async def post(port: int, data: bytes, go: asyncio.Event) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /api/contacts HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    try:
        writer.write(head + data[:-1])
        await go.wait()
        writer.write(data[-1:])
        status_line = await asyncio.wait_for(reader.readline(), 300)
        return int(status_line.split()[1])
    except (ConnectionError, IndexError):
        return 0  # refused and closed before the body was sent
    finally:
        writer.close()


async def burst(port: int, clients: int, size: int) -> Counter[int]:
    go = asyncio.Event()
    tasks = [
        asyncio.create_task(post(port, body(size, f"c{i}-{time.monotonic_ns()}"), go))
        for i in range(clients)
    ]
    await asyncio.sleep(2.0)  # every client has sent all but its last byte, or been refused
    go.set()
    return Counter(await asyncio.gather(*tasks))


@dataclass(frozen=True, slots=True)
class Run:
    budget: int
    statuses: Counter[int]
    growth_mib: float


def run(budget: int, clients: int, size: int, directory: Path) -> Run:
    http_port, smtp_port = free_ports(2)
    config = directory / f"config-{time.monotonic_ns()}.toml"
    db = directory / f"spoc-{time.monotonic_ns()}.db"
    config.write_text(
        config_text(
            db,
            smtp_port,
            http_port,
            server=f"max_inflight_body_bytes = {budget}",
            extra='[triage]\nclassifier = "off"\n',
        )
    )
    args, env = serve_command(config), clean_environment()
    env["SPOC_API_TOKEN"] = TOKEN

    def work(pid: int) -> Run:
        asyncio.run(burst(http_port, 2, size))  # warm-up
        time.sleep(0.5)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before = proc_kib(pid, "VmRSS") / 1024
        statuses = asyncio.run(burst(http_port, clients, size))
        time.sleep(0.3)
        return Run(budget, statuses, proc_kib(pid, "VmHWM") / 1024 - before)

    return with_server(args, http_port, directory / "serve.log", work, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--body-kib", type=int, default=1900)
    parser.add_argument("--budget-mib", type=float, default=3.0, help="the budgeted run's key")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.body_kib * 1024
    directory = Path(tempfile.mkdtemp(prefix="spoc-http-memory-"))
    budgeted, unbounded = [], []
    for _ in range(args.repeat):
        for runs, budget in ((unbounded, UNBOUNDED), (budgeted, int(args.budget_mib * 2**20))):
            result = run(budget, args.clients, size, directory)
            runs.append(result)
            print(
                f"budget {'none' if budget == UNBOUNDED else budget:>10}  "
                f"answers {dict(sorted(result.statuses.items()))}  "
                f"peak RSS growth {result.growth_mib:7.1f} MiB",
                flush=True,
            )
    with_budget = statistics.median(r.growth_mib for r in budgeted)
    without = statistics.median(r.growth_mib for r in unbounded)
    print(f"{args.clients} bodies of {args.body_kib} KiB at once; median over {args.repeat}:")
    print(f"  no budget       {without:7.1f} MiB")
    print(f"  budget {args.budget_mib:g} MiB  {with_budget:7.1f} MiB")
    print(f"  budget / none   {with_budget / without:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
