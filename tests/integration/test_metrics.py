"""``GET /metrics`` beyond the intake counters: suppressed acks, thread rules, HTTP latency by
route. The real app over SQLite; the contacts go in through the API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.http_metrics import MetricsScrape
from gateway.metrics import Metrics
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore
from router.store import Store
from tests.integration.test_http_api import AUTH, Gateway, contact_body, gw, store

__all__ = ["gw", "store"]  # fixtures, used by name


async def test_a_suppressed_acknowledgement_is_counted_by_its_reason(gw: Gateway) -> None:
    assert "spoc_acks_suppressed_total{" not in await (await gw.client.get("/metrics")).text()
    await gw.new_contact(**{"from": {"email": "no-reply@example.org"}})
    await gw.new_contact()  # acknowledged: counts nowhere here

    assert await gw.metric("spoc_acks_suppressed_total", channel="api", reason="role-address") == 1
    text = await (await gw.client.get("/metrics")).text()
    assert text.count("spoc_acks_suppressed_total{") == 1


async def test_each_routed_contact_counts_its_thread_rule_and_a_duplicate_does_not(
    gw: Gateway,
) -> None:
    await gw.new_contact(external_id="thread-1")
    await gw.post("/api/contacts", contact_body(external_id="thread-1"))  # duplicate

    assert await gw.metric("spoc_thread_matches_total", channel="api", reason="new") == 1


async def test_http_latency_is_observed_per_route_template_not_per_raw_path(gw: Gateway) -> None:
    ticket = await gw.new_contact()
    await gw.client.get(f"/api/tickets/{ticket['ref']}", headers=AUTH)
    await gw.client.get("/api/tickets/SD-999999", headers=AUTH)
    for n in range(3):
        await gw.client.get(f"/no/such/page/{n}")

    route = "/api/tickets/{ref}"
    assert await gw.metric("spoc_http_request_seconds_count", method="GET", route=route) == 2
    assert await gw.metric("spoc_http_responses_total", route=route, status="404") == 1
    assert await gw.metric("spoc_http_responses_total", route="unmatched", status="404") == 3
    assert await gw.metric("spoc_http_responses_total", route="/api/contacts", status="201") == 1
    text = await (await gw.client.get("/metrics")).text()
    assert "/no/such/page" not in text


async def test_an_unknown_http_method_is_one_series_not_one_per_method(gw: Gateway) -> None:
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        await gw.client.request(method, "/healthz")
    assert await gw.metric("spoc_http_responses_total", method="other", route="unmatched") == 3


async def test_the_quarantine_size_counts_the_items_that_wait_by_kind(
    gw: Gateway,
) -> None:
    assert await gw.metric("spoc_quarantine_size", kind="error") == 0
    kept = QuarantineStore(gw.store)
    await kept.keep(b"not a mail at all", source="smtp", reason="failed: parse error")
    await kept.keep(b"another one", source="smtp", reason="failed: parse error")
    assert await gw.metric("spoc_quarantine_size", kind="error") == 2
    assert await gw.metric("spoc_quarantine_size", kind="system") == 0


class HeldCollector(Collector):
    """A collector that holds its render until released, noting the thread it ran in."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.current_thread())
        self.started.set()
        if not self.release.wait(10):
            raise RuntimeError("never released: the render held up whoever released it")
        yield GaugeMetricFamily("spoc_test_renders", "Renders so far.", len(self.threads))

    def describe(self) -> Iterator[Metric]:  # registering must not count as a render
        yield GaugeMetricFamily("spoc_test_renders", "Renders so far.", 0)


def held_scrape(store: Store) -> tuple[MetricsScrape, HeldCollector]:
    """A scrape whose renders go through a :class:`HeldCollector`."""
    metrics = Metrics()
    held = HeldCollector()
    metrics.registry.register(held)
    return MetricsScrape(metrics, OutboxAdmin(store), store), held


async def test_a_scrape_renders_off_the_event_loop_and_concurrent_scrapes_share_one_render(
    store: Store,
) -> None:
    scrape, held = held_scrape(store)

    scrapes = asyncio.gather(scrape.render(), scrape.render(), scrape.render())
    # The loop stays free while the render is held: this very wait runs on it.
    assert await asyncio.to_thread(held.started.wait, 10)
    held.release.set()
    texts = {body for body, _ in await scrapes}

    assert len(held.threads) == 1
    assert held.threads[0] is not threading.current_thread()
    assert len(texts) == 1 and b"spoc_test_renders 1.0" in texts.pop()
    # The next scrape renders afresh.
    body, _ = await scrape.render()
    assert b"spoc_test_renders 2.0" in body


async def test_a_scrape_that_comes_during_a_render_gets_values_read_after_it_came(
    store: Store,
) -> None:
    # Sharing a render must not hand a scrape text read before it was asked for: a count
    # made before the second scrape came must be in its answer.
    scrape, held = held_scrape(store)

    first = asyncio.ensure_future(scrape.render())
    assert await asyncio.to_thread(held.started.wait, 10)  # the first render is under way
    held.started.clear()
    second = asyncio.ensure_future(scrape.render())
    third = asyncio.ensure_future(scrape.render())
    await asyncio.sleep(0)  # both have asked while the first render is still held
    held.release.set()
    texts = await asyncio.gather(first, second, third)

    assert b"spoc_test_renders 1.0" in texts[0][0]
    # The two that came during the first render share the next one, read after they came.
    assert b"spoc_test_renders 2.0" in texts[1][0]
    assert texts[2] == texts[1]
    assert len(held.threads) == 2
