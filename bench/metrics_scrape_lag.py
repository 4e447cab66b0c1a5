"""Event-loop lag while ``/metrics`` is scraped: the text rendered on the loop (the code before
``gateway.http_metrics.MetricsScrape``) against ``MetricsScrape`` (rendered in a thread), and
no scrape at all (``idle``, the machine's own noise), alternating in one run.

A ticker task sleeps 1 ms at a time; each phase reports the longest gap it saw while 40
scrapes ran one after another (each with its database read, SQLite). The registry holds the
intake series plus ``--routes`` HTTP routes with four statuses each.

    python bench/metrics_scrape_lag.py --routes 25 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from gateway.http_metrics import MetricsScrape, refresh_gauges
from gateway.metrics import Metrics
from gateway.migrate import upgrade
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore
from router.store import Store

SCRAPES = 40
MODES = ("idle", "on-loop", "thread")


def populated(routes: int) -> Metrics:
    metrics = Metrics()
    for route in range(routes):
        for status in (200, 201, 400, 404):
            metrics.observe_http("POST", f"/route/{route}", status, 0.01)
    return metrics


async def ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def phase(mode: str, store: Store, metrics: Metrics) -> float:
    """The longest loop gap, in ms, while ``SCRAPES`` scrapes run the ``mode`` way."""
    outbox, quarantine = OutboxAdmin(store), QuarantineStore(store)
    scrape = MetricsScrape(metrics, outbox, store)
    gaps: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(ticker(gaps, stop))
    await asyncio.sleep(0.05)
    for _ in range(SCRAPES):
        if mode == "on-loop":
            await refresh_gauges(metrics, outbox, quarantine)
            metrics.render()
        elif mode == "thread":
            await scrape.render()
        await asyncio.sleep(0.005)
    stop.set()
    await task
    return max(gaps) * 1000


async def main(routes: int, rounds: int) -> None:
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='spoc-scrape-')) / 'spoc.db'}"
    upgrade(url)
    store = Store.from_url(url)
    await store.start()
    metrics = populated(routes)
    started = time.perf_counter()
    metrics.render()
    print(f"one render: {(time.perf_counter() - started) * 1000:.1f} ms")
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            results[mode].append(await phase(mode, store, metrics))
    for mode, values in results.items():
        rounded = [round(v, 1) for v in values]
        print(f"{mode:8} max loop gap (ms) {rounded} median {statistics.median(values):.1f}")
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.routes, args.rounds))
