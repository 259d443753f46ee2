"""The report's SVG charts, drawn in Python: a line chart with interval bands and a bar chart of
events per bucket, over time buckets with readable ticks. Hovering a point shows its value
through the SVG's own <title> tooltips; no script, nothing loaded from the network."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from itertools import pairwise

from app.report_values import as_items, as_moment, as_number, as_plottable, as_text, formatted

WIDTH = 800  # SVG user units; the page scales the drawing to its column
_LEFT, _RIGHT, _PLOT_HEIGHT, _BOTTOM = 70, 16, 220, 42
_MARKERS_UP_TO = 200  # hoverable markers on every point of series no longer than this
_TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
FULL_TIME = "%Y-%m-%d %H:%M"

# --- plots --------------------------------------------------------------------------------------


@dataclass
class Buckets:
    """Where each bucket sits on the x axis (seconds since the epoch) and how to label it."""

    x: list[float]
    width: float
    timed: bool  # False when bucketStarts were not timestamps: the x axis counts buckets
    labels: list[str]
    events: list[float | None]

    @classmethod
    def of(cls, report: dict) -> Buckets:
        starts = as_items(report.get("bucketStarts"))
        moments = [as_moment(start) for start in starts]
        counts = as_items(report.get("bucketEvents"))
        events = [as_plottable(counts[i] if i < len(counts) else None) for i in range(len(starts))]
        minutes = as_number(report.get("intervalMinutes"))
        if starts and all(m and 1971 <= m.year <= 9000 for m in moments):
            x = [moment.timestamp() for moment in moments if moment]
            gaps = [b - a for a, b in pairwise(x) if b > a]
            ok = minutes is not None and 0 < minutes <= 1e7
            width = minutes * 60 if ok else min(gaps, default=3600.0)
            labels = [moment.strftime(FULL_TIME) for moment in moments if moment]
            return cls(x, width, True, labels, events)
        labels = [f"bucket {i + 1}: {as_text(start)}" for i, start in enumerate(starts)]
        return cls([float(i) for i in range(len(starts))], 1.0, False, labels, events)

    @property
    def domain(self) -> tuple[float, float]:
        if len(self.x) == 1:  # room either side, so one bucket does not fill the chart
            return self.x[0] - self.width, self.x[0] + 2 * self.width
        return min(self.x), max(self.x) + self.width

    def middle(self, index: int) -> float:
        return self.x[index] + self.width / 2


@dataclass
class Series:
    name: str
    color: str
    values: list[float | None]
    lower: list[float | None] | None = None
    upper: list[float | None] | None = None
    shift: float = 0.0  # SVG units sideways, to set apart the series of a single bucket


def _nice_ticks(low: float, high: float, most: int = 6) -> tuple[list[float], float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if high < low:
        low, high = high, low
    if high - low <= 1e-12 * max(1.0, abs(low), abs(high)):
        pad = abs(low) * 0.1 or 0.5
        low, high = low - pad, high + pad
    raw = (high - low) / most
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if (high - low) / (m * magnitude) <= most)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)], step


def _tick_label(value: float, step: float) -> str:
    decimals = next(
        (d for d in range(10) if abs(step * 10**d - round(step * 10**d)) < 1e-6 * 10**d), 10
    )
    return f"{0.0 if abs(value) < step * 1e-6 else value:,.{decimals}f}"


def _x_ticks(buckets: Buckets) -> tuple[list[tuple[float, str]], str]:
    """Ticks on round times (whole minutes, hours, days) and the axis caption."""
    low, high = buckets.domain
    if not buckets.timed:
        values, step = _nice_ticks(low, high, 7)
        ticks = [(v, f"{v:g}") for v in values if low <= v <= high and v.is_integer()]
        return ticks, "bucket"
    span = high - low
    step = next((s for s in _TIME_STEPS if span / s <= 7), None)
    step = step or _TIME_STEPS[-1] * math.ceil(span / _TIME_STEPS[-1] / 7)
    first, last = datetime.fromtimestamp(low, UTC), datetime.fromtimestamp(high - 1, UTC)
    if step >= 86400:
        form = "%m-%d" if first.year == last.year else "%Y-%m-%d"
        caption = f"date (UTC, {first.year})" if first.year == last.year else "date (UTC)"
    elif first.date() == last.date():
        form, caption = "%H:%M", f"time (UTC, {first:%Y-%m-%d})"
    else:
        form, caption = "%m-%d %H:%M", "time (UTC)"
    ticks = []
    tick = math.ceil(low / step) * step
    while tick <= high:
        ticks.append((float(tick), datetime.fromtimestamp(tick, UTC).strftime(form)))
        tick += step
    return ticks, caption


class _Frame:
    """One chart's drawing area: scales from data to SVG units, axes, grid and legend."""

    def __init__(self, buckets: Buckets, y_low: float, y_high: float, legend: list[Series]):
        self.buckets = buckets
        self.x_low, self.x_high = buckets.domain
        self.y_ticks, self.y_step = _nice_ticks(y_low, y_high)
        self.legend = self._legend(legend)
        self.top = 14 + 18 * (max((row for row, _, _ in self.legend), default=-1) + 1)
        self.bottom = self.top + _PLOT_HEIGHT
        self.height = self.bottom + _BOTTOM
        self.left, self.right = _LEFT, WIDTH - _RIGHT

    @staticmethod
    def _legend(series: list[Series]) -> list[tuple[int, float, Series]]:
        placed, row, at = [], 0, float(_LEFT)
        for item in series:
            width = 34 + 7 * len(_short(item.name))
            if at + width > WIDTH - _RIGHT and at > _LEFT:
                row, at = row + 1, float(_LEFT)
            placed.append((row, at, item))
            at += width
        return placed

    def x(self, value: float) -> float:
        low, high = self.x_low, self.x_high
        return round(self.left + (value - low) / (high - low) * (self.right - self.left), 2)

    def y(self, value: float) -> float:
        low, high = self.y_ticks[0], self.y_ticks[-1]
        return round(self.bottom - (value - low) / (high - low) * (self.bottom - self.top), 2)

    def open(self, label: str) -> list[str]:
        out = [
            f'<svg viewBox="0 0 {WIDTH} {self.height}" role="img" aria-label="{escape(label)}">',
        ]
        for value in self.y_ticks:
            y = self.y(value)
            out.append(
                f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{y}" y2="{y}"/>'
                f'<text class="tick" x="{self.left - 6}" y="{y + 4}" text-anchor="end">'
                f"{_tick_label(value, self.y_step)}</text>"
            )
        ticks, caption = _x_ticks(self.buckets)
        for value, text in ticks:
            x = self.x(value)
            out.append(
                f'<line class="axis" x1="{x}" x2="{x}" y1="{self.bottom}" y2="{self.bottom + 4}"/>'
                f'<text class="tick" x="{x}" y="{self.bottom + 16}" text-anchor="middle">'
                f"{escape(text)}</text>"
            )
        out.append(
            f'<line class="axis" x1="{self.left}" x2="{self.right}" y1="{self.bottom}" '
            f'y2="{self.bottom}"/><line class="axis" x1="{self.left}" x2="{self.left}" '
            f'y1="{self.top}" y2="{self.bottom}"/>'
            f'<text class="tick" x="{self.right}" y="{self.bottom + 34}" text-anchor="end">'
            f"{escape(caption)}</text>"
        )
        for row, at, item in self.legend:
            y = 10 + 18 * row
            out.append(
                f'<g class="legend-item" data-series="{escape(item.name)}">'
                f"<title>{escape(item.name)}</title>"
                f'<rect x="{at}" y="{y}" width="14" height="10" rx="2" fill="{item.color}"/>'
                f'<text x="{at + 20}" y="{y + 9}">{escape(_short(item.name))}</text></g>'
            )
        return out


def _short(name: str, limit: int = 32) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def line_chart(
    label: str, series: list[Series], buckets: Buckets, zero: bool = False, floor: bool = False
) -> str:
    """Lines with their bands; `zero` draws a dashed zero line, `floor` starts the axis at 0."""
    values = [
        v for s in series for v in (*s.values, *(s.lower or ()), *(s.upper or ())) if v is not None
    ]
    if zero or floor:
        values.append(0.0)
    low, high = min(values, default=0.0), max(values, default=1.0)
    room = (high - low) * 0.03  # keep lines off the frame's edges
    low = low if floor and low >= 0 else low - room
    frame = _Frame(buckets, low, high + room, series)
    out = frame.open(label)
    if zero:
        out.append(
            f'<line class="zero-line" x1="{frame.left}" x2="{frame.right}" '
            f'y1="{frame.y(0.0)}" y2="{frame.y(0.0)}"/>'
        )
    if len(buckets.x) == 1:
        for k, item in enumerate(series):
            item.shift = (k - (len(series) - 1) / 2) * 14
    for item in series:
        out.extend(_band(frame, item))
    for item in series:
        out.extend(_line(frame, item))
    if not any(v is not None for s in series for v in s.values):
        out.append(
            f'<text class="tick" x="{(frame.left + frame.right) / 2}" '
            f'y="{(frame.top + frame.bottom) / 2}" text-anchor="middle">No data</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _runs(present: list[bool]) -> list[list[int]]:
    """Indices split into runs of consecutive present values."""
    runs: list[list[int]] = []
    for index, ok in enumerate(present):
        if not ok:
            continue
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _x(frame: _Frame, item: Series, index: int) -> float:
    return round(frame.x(frame.buckets.middle(index)) + item.shift, 2)


def _band(frame: _Frame, item: Series) -> list[str]:
    if item.lower is None or item.upper is None:
        return []
    lower, upper = item.lower, item.upper
    parts = []
    for run in _runs([a is not None and b is not None for a, b in zip(lower, upper, strict=True)]):
        if len(run) == 1:  # one point: a narrow box instead of a zero-width polygon
            x = _x(frame, item, run[0])
            left, right = max(frame.left, x - 4), min(frame.right, x + 4)
            top, bottom = frame.y(upper[run[0]]), frame.y(lower[run[0]])
            parts.append(f"M{left},{top}L{right},{top}L{right},{bottom}L{left},{bottom}Z")
            continue
        edge = [(_x(frame, item, i), frame.y(upper[i])) for i in run]
        edge += [(_x(frame, item, i), frame.y(lower[i])) for i in reversed(run)]
        parts.append("M" + "L".join(f"{x},{y}" for x, y in edge) + "Z")
    if not parts:
        return []
    return [
        f'<path class="series-band" data-series="{escape(item.name)}" fill="{item.color}" '
        f'd="{"".join(parts)}"/>'
    ]


def _line(frame: _Frame, item: Series) -> list[str]:
    runs = _runs([v is not None for v in item.values])
    if not runs:
        return []
    points = {i: (_x(frame, item, i), frame.y(item.values[i])) for r in runs for i in r}
    d = "".join("M" + "L".join(f"{points[i][0]},{points[i][1]}" for i in run) for run in runs)
    name = escape(item.name)
    out = [f'<path class="series-line" data-series="{name}" stroke="{item.color}" d="{d}"/>']
    every = len(points) <= _MARKERS_UP_TO
    for run in runs:
        for i in run:
            if len(run) > 1 and not every:
                continue
            hover = " hover" if len(run) > 1 else ""  # lone points stay visible
            bounds = ""
            if item.lower is not None and item.upper is not None:
                bounds = f" [{formatted(item.lower[i])}, {formatted(item.upper[i])}]"
            tip = f"{item.name} · {frame.buckets.labels[i]}: {formatted(item.values[i])}{bounds}"
            x, y = points[i]
            out.append(
                f'<circle class="series-marker{hover}" data-series="{name}" cx="{x}" cy="{y}" '
                f'r="4" fill="{item.color}"><title>{escape(tip)}</title></circle>'
            )
    return out


def bar_chart(buckets: Buckets) -> str:
    counts = [c or 0.0 for c in buckets.events]
    frame = _Frame(buckets, 0.0, max(counts, default=1.0) or 1.0, [])
    out = frame.open("Events per bucket")
    base = frame.y(0.0)
    for i, count in enumerate(counts):
        left = frame.x(buckets.x[i])
        right = frame.x(buckets.x[i] + buckets.width)
        gap = 1.0 if right - left > 3 else 0.0
        width = round(max(right - left - gap, 0.5), 2)
        top = frame.y(count)
        tip = f"{buckets.labels[i]}: {formatted(buckets.events[i])} events"
        out.append(
            f'<rect class="bar" x="{left}" y="{top}" width="{width}" '
            f'height="{round(base - top, 2)}"><title>{escape(tip)}</title></rect>'
        )
    out.append("</svg>")
    return "\n".join(out)
