"""The gauges ``GET /metrics`` reads from the database at each scrape: the outbox and the
quarantine (``spoc_outbox_depth``, ``spoc_outbox_dead``, ``spoc_outbox_oldest_pending_seconds``,
``spoc_quarantine_size{kind}``).

They describe the one shared database, not a process, so they are a custom collector holding
the last reading rather than prometheus ``Gauge`` objects. Under ``spoc serve --workers N`` the
scrape registry holds this collector once, beside the multiprocess collector that sums the
workers' counters: each gauge appears once, as the worker that answered the scrape has just
read it. As per-worker ``Gauge`` objects in multiprocess mode they would be summed over the
workers (``livesum``: N times the depth), or depend on which worker refreshed its copy last.

When the database does not answer, a scrape shows the last reading this process made (zeros
before the first), as it did with plain gauges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class DatabaseReading:
    """What one scrape read from the database."""

    outbox_pending: int = 0
    outbox_dead: int = 0
    oldest_pending_seconds: float = 0.0
    quarantine_sizes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


class DatabaseGauges(Collector):
    """A prometheus collector exporting the last :class:`DatabaseReading`."""

    def __init__(self, quarantine_kinds: Iterable[str]) -> None:
        sizes = dict.fromkeys(quarantine_kinds, 0)  # every kind shows 0 rather than nothing
        self._reading = DatabaseReading(quarantine_sizes=MappingProxyType(sizes))

    def set_outbox(self, pending: int, dead: int, oldest_pending_seconds: float) -> None:
        self._reading = replace(
            self._reading,
            outbox_pending=pending,
            outbox_dead=dead,
            oldest_pending_seconds=max(oldest_pending_seconds, 0.0),
        )

    def set_quarantine_sizes(self, sizes: Mapping[str, int]) -> None:
        merged = {**self._reading.quarantine_sizes, **sizes}
        self._reading = replace(self._reading, quarantine_sizes=MappingProxyType(merged))

    def collect(self) -> Iterator[Metric]:
        reading = self._reading
        yield GaugeMetricFamily(
            "spoc_outbox_depth", "Outbox rows waiting to be delivered.", reading.outbox_pending
        )
        yield GaugeMetricFamily(
            "spoc_outbox_dead",
            "Outbox rows given up on (dead letters), until retried.",
            reading.outbox_dead,
        )
        yield GaugeMetricFamily(
            "spoc_outbox_oldest_pending_seconds",
            "Seconds since the oldest outbox row still waiting was queued; 0 when none waits.",
            reading.oldest_pending_seconds,
        )
        sizes = GaugeMetricFamily(
            "spoc_quarantine_size",
            "Items in the quarantine not yet replayed, by kind.",
            labels=["kind"],
        )
        for kind, size in reading.quarantine_sizes.items():
            sizes.add_metric([kind], size)
        yield sizes

    def describe(self) -> Iterator[Metric]:
        return self.collect()
