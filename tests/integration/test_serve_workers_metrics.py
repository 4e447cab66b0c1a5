"""``GET /metrics`` under ``spoc serve --workers 2``: every scrape, whichever worker answers it,
reports the totals of all workers (prometheus_client's multiprocess mode), a killed worker's
counts stay in them, and the gauges read from the database appear once, not summed.

Real processes on a real PostgreSQL, mail over SMTP on one connection each so that the kernel
spreads them over both workers (the log says which worker took which). Helpers come from
``test_serve_workers`` and ``test_serve_process``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import stat
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.quarantine import QuarantineStore
from router.store import Store
from tests.integration.test_serve_process import Gateway, http_get, running_gateways
from tests.integration.test_serve_workers import (
    kill_a_worker,
    mail_all_accepted,
    metrics_dir,
    start_workers,
)

__all__ = ["running_gateways"]  # the fixture, imported for the tests below

SCRAPES = 16  # one connection each: both workers answer some (all on one: 2 in 65,536)
_SCRAPED = re.compile(r'\[(\d+)\] aiohttp\.access: .*"GET /metrics')


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: Gateway) -> Samples:
    """One ``GET /metrics`` on a new connection: every sample by name and labels."""
    status, body = http_get(gateway.ready.http_port, "/metrics")
    assert status == 200, body
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` carrying ``labels`` (any others)."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def email_intake_totals(gateway: Gateway, scrapes: int = SCRAPES) -> list[tuple[float, float]]:
    """``(spoc_contacts_total, spoc_intake_seconds_count)`` of the email channel, per scrape."""
    found = []
    for _ in range(scrapes):
        samples = scrape(gateway)
        found.append(
            (
                total(samples, "spoc_contacts_total", channel="email"),
                total(samples, "spoc_intake_seconds_count", channel="email"),
            )
        )
    return found


def quarantine_errors(pg_url: str, count: int) -> None:
    """``count`` items kept in the quarantine, straight in the database."""

    async def keep() -> None:
        store = Store.from_url(pg_url)
        await store.start()
        try:
            for n in range(count):
                raw = f"not a mail {n}".encode()
                await QuarantineStore(store).keep(raw, source="smtp", reason="failed: test")
        finally:
            await store.close()

    asyncio.run(keep())


@pytest.mark.postgres
def test_every_scrape_of_any_worker_reports_the_total_of_all_workers(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    gateway, pids = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)
    directory = metrics_dir(gateway)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700  # private to spoc's user
    keys = [f"metrics m{i}" for i in range(24)]

    by_worker = mail_all_accepted(gateway, keys)
    quarantine_errors(pg_url, 3)
    totals = email_intake_totals(gateway)

    assert set(by_worker) == pids, by_worker  # both workers took mail: neither alone has 24
    assert totals == [(24.0, 24.0)] * SCRAPES
    scraped_by = Counter(int(m.group(1)) for m in _SCRAPED.finditer(gateway.process.log()))
    assert set(scraped_by) == pids, scraped_by  # and both answered scrapes
    samples = scrape(gateway)
    # Read from the database at the scrape: once, not once per worker.
    assert total(samples, "spoc_quarantine_size", kind="error") == 3
    assert len([k for k in samples if k[0] == "spoc_quarantine_size"]) == 2  # system, error
    assert {p.name.split("_")[-1] for p in directory.glob("*.db")} >= {f"{pid}.db" for pid in pids}

    assert gateway.process.stop(signal.SIGTERM) == 0
    assert not directory.exists()  # removed when the parent exits


@pytest.mark.postgres
def test_a_killed_workers_counts_stay_in_the_totals_after_it_is_replaced(
    tmp_path: Path, pg_url: str, running_gateways: list[Gateway]
) -> None:
    gateway, pids = start_workers(tmp_path, pg_url)
    running_gateways.append(gateway)
    before = mail_all_accepted(gateway, [f"before kill m{i}" for i in range(16)])
    assert set(before) == pids, before
    victim = min(pids)

    replacement = kill_a_worker(gateway, victim)

    # The dead worker's counter files stay in the shared directory, so the victim's mail stays
    # counted: totals never go down.
    assert email_intake_totals(gateway, scrapes=8) == [(16.0, 16.0)] * 8
    after = mail_all_accepted(gateway, [f"after kill m{i}" for i in range(8)])
    assert after[replacement] > 0
    assert email_intake_totals(gateway, scrapes=8) == [(24.0, 24.0)] * 8
    assert gateway.process.stop(signal.SIGTERM) == 0
