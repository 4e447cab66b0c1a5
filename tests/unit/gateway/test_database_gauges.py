"""The gauges read from the database at each scrape, exported once by their own collector."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.database_gauges import DatabaseGauges


def samples(gauges: DatabaseGauges) -> dict[tuple[str, tuple[str, ...]], float]:
    registry = CollectorRegistry()
    registry.register(gauges)
    return {
        (s.name, tuple(s.labels.values())): s.value
        for family in registry.collect()
        for s in family.samples
    }


def test_every_quarantine_kind_shows_zero_before_the_first_reading() -> None:
    assert samples(DatabaseGauges(("system", "error"))) == {
        ("spoc_outbox_depth", ()): 0,
        ("spoc_outbox_dead", ()): 0,
        ("spoc_outbox_oldest_pending_seconds", ()): 0,
        ("spoc_quarantine_size", ("system",)): 0,
        ("spoc_quarantine_size", ("error",)): 0,
    }


def test_a_reading_replaces_the_last_and_a_kind_not_read_keeps_its_value() -> None:
    gauges = DatabaseGauges(("system", "error"))
    gauges.set_quarantine_sizes({"system": 4, "error": 1})
    gauges.set_quarantine_sizes({"error": 2})
    gauges.set_outbox(pending=7, dead=1, oldest_pending_seconds=-0.5)  # clocks apart: not < 0

    found = samples(gauges)

    assert found[("spoc_quarantine_size", ("system",))] == 4
    assert found[("spoc_quarantine_size", ("error",))] == 2
    assert found[("spoc_outbox_depth", ())] == 7
    assert found[("spoc_outbox_dead", ())] == 1
    assert found[("spoc_outbox_oldest_pending_seconds", ())] == 0
