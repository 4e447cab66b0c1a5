"""docs/grafana-dashboard.json queries only series that /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"
_SERIES = re.compile(r"\bspoc_[a-z_]+")


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every series name /metrics can carry (a labelled counter appears at its first count)."""
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def test_every_series_the_dashboard_queries_exists_in_the_exposition() -> None:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    queried = {
        name
        for panel in panels
        for target in panel["targets"]
        for name in _SERIES.findall(target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried - exposed() == set()


def test_the_dashboard_has_a_panel_for_each_metric_family_of_the_issue() -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    for family in (
        "spoc_contacts_total", "spoc_acks_suppressed_total", "spoc_thread_matches_total",
        "spoc_quarantine_size", "spoc_outbox_depth", "spoc_outbox_oldest_pending_seconds",
        "spoc_delivery_failures_total", "spoc_intake_seconds_bucket",
        "spoc_http_request_seconds_bucket",
    ):  # fmt: skip
        assert family in text, family
