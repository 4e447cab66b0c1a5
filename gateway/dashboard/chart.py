"""Intake as a stacked bar chart: geometry computed here, drawn as inline SVG by the template
(no script, no inline style: colours are CSS classes ``ch-<channel>``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from router.stats import Histogram

WIDTH = 720
HEIGHT = 160
LABEL_HEIGHT = 18


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    channel: str
    count: int
    label: str  # the bucket's start, for the tooltip


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]  # (x, text) under the bars
    peak: int
    width: int = WIDTH
    height: int = HEIGHT + LABEL_HEIGHT
    plot_height: int = HEIGHT


def stacked_bars(title: str, histogram: Histogram) -> Chart:
    buckets = len(histogram.starts)
    slot = WIDTH / max(buckets, 1)
    totals = [sum(c[i] for c in histogram.counts.values()) for i in range(buckets)]
    peak = max(totals, default=0)
    scale = (HEIGHT - 4) / peak if peak else 0.0
    hourly = histogram.step < timedelta(days=1)
    bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    for i, start in enumerate(histogram.starts):
        # an hour by its start (14:00), a day by the date it ends on (today's bar is today)
        label = start.strftime("%H:%M") if hourly else (start + histogram.step).strftime("%a %d %b")
        if not hourly or i % 4 == 0:
            ticks.append((i * slot + slot / 2, label))
        y = float(HEIGHT)
        for channel, counts in histogram.counts.items():
            if counts[i]:
                h = counts[i] * scale
                y -= h
                bars.append(Bar(i * slot + 1, y, slot - 2, h, channel, counts[i], label))
    return Chart(title, tuple(bars), tuple(ticks), peak)
