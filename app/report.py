"""An offline-evaluation report as one self-contained HTML page: a summary table per policy and
inline SVG plots drawn here, in Python. Nothing on the page loads from the network; hovering a
point shows its value through the SVG's own <title> tooltips, so no script is needed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from itertools import pairwise

# Observable's ten categorical colors: distinct, and readable on white.
PALETTE = (
    "#4269d0",
    "#efb118",
    "#ff725c",
    "#6cc5b0",
    "#3ca951",
    "#ff8ab7",
    "#a463f2",
    "#97bbf5",
    "#9c6b4e",
    "#9498a0",
)
WIDTH = 800  # SVG user units; the page scales the drawing to its column
_LEFT, _RIGHT, _PLOT_HEIGHT, _BOTTOM = 70, 16, 220, 42
_MARKERS_UP_TO = 200  # hoverable markers on every point of series no longer than this
_TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
_FULL_TIME = "%Y-%m-%d %H:%M"
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;
background:#f6f8fa}
main{max-width:1280px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 8px}
section,header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;
margin:0 0 16px}
.sub{color:#57606a;margin:0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:10px 0 0;
color:#57606a}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:6px 7px;border-bottom:1px solid #eaeef2;text-align:right;vertical-align:top;
white-space:nowrap}
th{background:#f6f8fa;font-weight:600;white-space:normal;vertical-align:bottom}
th:first-child,td:first-child,td.text{text-align:left}
td.text{white-space:normal;min-width:70px;max-width:260px}
td.text code{display:inline-block;margin-top:3px}
tr.optimal td{background:#eafbea}
.iv{display:block;color:#57606a;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.badge{display:inline-block;font-size:11px;padding:0 6px;border-radius:10px;margin-left:6px;
background:#1a7f37;color:#fff}
.pos{color:#1a7f37;font-weight:600}.neg{color:#cf222e}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa;
padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
.note{color:#57606a;font-style:italic}
.promote{border-left:6px solid #1a7f37}.hold{border-left:6px solid #9a6700}
svg{display:block;width:100%;height:auto;font:11px system-ui,sans-serif}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}svg .tick{fill:#57606a}
svg .zero-line{stroke:#57606a;stroke-dasharray:4 3}
svg .series-line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg .series-band{stroke:none;fill-opacity:.15}
svg .series-marker.hover{opacity:0}svg .series-marker:hover{opacity:1}
svg .bar{fill:#8c959f}svg .bar:hover{fill:#4269d0}
"""


def render_html(report: dict) -> str:
    """The report from `policies.evaluation_report.report` as a complete, self-contained HTML page."""
    evaluation = report.get("evaluation") if isinstance(report.get("evaluation"), dict) else {}
    name = _text(evaluation.get("name")) or _text(evaluation.get("id")) or "Offline evaluation"
    policies = [p for p in _list(report.get("policies")) if isinstance(p, dict)]
    buckets = _Buckets.of(report)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Offline evaluation: {escape(name)}</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        _header(report, evaluation, name),
    ]
    if isinstance(report.get("promotion"), dict):
        parts.append(_promotion(report["promotion"]))
    parts.append(_summary(policies, report.get("optimalPolicy")))
    if not buckets.x:
        parts.append('<section><p class="note">No events in this window.</p></section>')
    else:
        parts.extend(_plots(policies, buckets))
    parts.append("</main></body></html>")
    return "\n".join(parts)


# --- formatting ---------------------------------------------------------------------------------


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _num(value: object) -> float | None:
    """A finite number, or None for null, text, booleans, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _plottable(value: object) -> float | None:
    """A number small enough to draw; larger ones are left out of the plots."""
    number = _num(value)
    return number if number is not None and abs(number) < 1e15 else None


def _fmt(value: object) -> str:
    number = _num(value)
    if number is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    size = abs(number)
    if size >= 1000:
        return f"{number:,.0f}"
    if size >= 100:
        return f"{number:.1f}"
    if size >= 10:
        return f"{number:.2f}"
    return f"{number:.4f}"


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _when(value: object) -> str:
    """A timestamp as compact UTC text (already escaped)."""
    moment = _time(value)
    if moment is None:
        return escape(_text(value)) or "—"
    return moment.strftime(_FULL_TIME + (":%S" if moment.second else "")) + " UTC"


def _window(start: object, end: object) -> str:
    first, last = _time(start), _time(end)
    if first and last and first.date() == last.date():
        return f"{first.strftime(_FULL_TIME)} – {last.strftime('%H:%M')} UTC"
    return f"{_when(start).removesuffix(' UTC')} – {_when(end)}"


def _confidence(value: object) -> str:
    level = _num(value)
    if level is None:
        return ""
    return f"{level * 100:g}%" if level <= 1 else f"{level:g}%"


def _interval(value: object, bounds_only: bool = False, also: str = "") -> str:
    """A `{"value","lower","upper","method","confidence"}` cell: the value over its interval, or
    only the interval (the value then in the tooltip)."""
    if not isinstance(value, dict):
        return "<td>—</td>"
    about = " ".join(
        s for s in (_confidence(value.get("confidence")), _text(value.get("method"))) if s
    )
    title = ", ".join(t for t in (f"{about} interval" if about else "interval", also) if t)
    bounds = f"[{_fmt(value.get('lower'))}, {_fmt(value.get('upper'))}]"
    if bounds_only:
        title = f"{_fmt(value.get('value'))}, {title}"
        return f'<td title="{escape(title)}">{bounds}</td>'
    body = f'{_fmt(value.get("value"))}<span class="iv">{bounds}</span>'
    return f'<td title="{escape(title)}">{body}</td>'


# --- page sections ------------------------------------------------------------------------------


def _header(report: dict, evaluation: dict, name: str) -> str:
    window = _window(evaluation.get("startTime"), evaluation.get("endTime"))
    minutes = _num(report.get("intervalMinutes"))
    facts = [f"{_fmt(report.get('events'))} events"]
    if minutes:
        facts.append(f"{minutes:g}-minute buckets")
    meta = {"Id": escape(_text(evaluation.get("id"))) or "—"}
    meta["Created"] = _when(evaluation.get("createdAt"))
    known = {"id", "name", "startTime", "endTime", "createdAt"}
    for key, value in evaluation.items():
        if key not in known and isinstance(value, str | int | float | bool):
            meta[escape(str(key))] = escape(str(value))
    rows = "".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in meta.items())
    return (
        f"<header><h1>Offline evaluation: {escape(name)}</h1>"
        f'<p class="sub">{window} · {" · ".join(facts)}</p><dl class="meta">{rows}</dl></header>'
    )


def _promotion(promotion: dict) -> str:
    promote = promotion.get("promote") is True
    verdict = "Promote the optimal policy" if promote else "Keep the current policy"
    reasons = "".join(f"<li>{escape(_text(r))}</li>" for r in _list(promotion.get("reasons")))
    evidence = promotion.get("evidence") if isinstance(promotion.get("evidence"), dict) else {}
    rows = "".join(
        f"<dt>{escape(str(key))}</dt><dd>{_value(value)}</dd>" for key, value in evidence.items()
    )
    return (
        f'<section class="{"promote" if promote else "hold"}"><h2>Promotion: {verdict}</h2>'
        + (f"<ul>{reasons}</ul>" if reasons else "")
        + (f'<dl class="meta">{rows}</dl>' if rows else "")
        + "</section>"
    )


def _value(value: object) -> str:
    if value is None or isinstance(value, bool):
        return {None: "—", True: "yes", False: "no"}[value]
    if isinstance(value, int | float):
        return _fmt(value)
    if isinstance(value, dict | list):
        return f"<code>{escape(json.dumps(value, default=str))}</code>"
    return escape(str(value))


_COLUMNS = (
    "Policy and arguments",
    "Source",
    "Events (p&gt;0)",
    "IPS",
    "IPS robust",
    "SNIPS",
    "DR",
    "ESS",
    "Max weight",
    "Δ vs Online",
    "Δ lower bound (95%)",
)


def _summary(policies: list[dict], optimal: object) -> str:
    rows = []
    for index, policy in enumerate(policies):
        total = policy.get("total") if isinstance(policy.get("total"), dict) else {}
        name = _text(policy.get("name"))
        is_optimal = optimal is not None and name == _text(optimal)
        badge = '<span class="badge">optimal</span>' if is_optimal else ""
        swatch = f'<span class="swatch" style="background:{PALETTE[index % len(PALETTE)]}"></span>'
        arguments = policy.get("arguments")
        code = f"<br><code>{escape(_text(arguments))}</code>" if arguments else ""
        difference = total.get("difference")
        bound = _num(difference.get("lowerBound95")) if isinstance(difference, dict) else None
        sign = "" if bound is None else ' class="pos"' if bound > 0 else ' class="neg"'
        cells = [
            f'<td class="text">{swatch}{escape(name) or "—"}{badge}{code}</td>',
            f'<td class="text">{escape(_text(policy.get("source"))) or "—"}</td>',
            f"<td>{_fmt(total.get('nonZeroProbability'))} / {_fmt(total.get('events'))}</td>",
            _interval(total.get("ips")),
            _interval(total.get("ipsRobust"), bounds_only=True),
            _interval(total.get("snips")),
            _interval(total.get("dr"), also=f"direct method {_fmt(total.get('dm'))}"),
            f"<td>{_fmt(total.get('effectiveSampleSize'))}</td>",
            f"<td>{_fmt(total.get('maxWeight'))}</td>",
            _interval(difference),
            f"<td{sign}>{_fmt(bound)}</td>",
        ]
        row_class = ' class="optimal"' if is_optimal else ""
        rows.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(_COLUMNS)}" class="note">No policies.</td></tr>')
    head = "".join(f"<th>{column}</th>" for column in _COLUMNS)
    return (
        f'<section><h2>Policies</h2><div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">IPS: inverse propensity scoring; SNIPS: self-normalized IPS; '
        "DR: doubly robust (hover for the direct method); robust: the robust interval; "
        "ESS: effective sample size. Values over [lower, upper] interval bounds. "
        "Δ vs Online: paired difference against the online policy on the same events, with the "
        "one-sided 95% lower bound (green when the challenger is better).</p></section>"
    )


# --- plots --------------------------------------------------------------------------------------


@dataclass
class _Buckets:
    """Where each bucket sits on the x axis (seconds since the epoch) and how to label it."""

    x: list[float]
    width: float
    timed: bool  # False when bucketStarts were not timestamps: the x axis counts buckets
    labels: list[str]
    events: list[float | None]

    @classmethod
    def of(cls, report: dict) -> _Buckets:
        starts = _list(report.get("bucketStarts"))
        moments = [_time(start) for start in starts]
        counts = _list(report.get("bucketEvents"))
        events = [_plottable(counts[i] if i < len(counts) else None) for i in range(len(starts))]
        minutes = _num(report.get("intervalMinutes"))
        if starts and all(m and 1971 <= m.year <= 9000 for m in moments):
            x = [moment.timestamp() for moment in moments if moment]
            gaps = [b - a for a, b in pairwise(x) if b > a]
            ok = minutes is not None and 0 < minutes <= 1e7
            width = minutes * 60 if ok else min(gaps, default=3600.0)
            labels = [moment.strftime(_FULL_TIME) for moment in moments if moment]
            return cls(x, width, True, labels, events)
        labels = [f"bucket {i + 1}: {_text(start)}" for i, start in enumerate(starts)]
        return cls([float(i) for i in range(len(starts))], 1.0, False, labels, events)

    @property
    def domain(self) -> tuple[float, float]:
        if len(self.x) == 1:  # room either side, so one bucket does not fill the chart
            return self.x[0] - self.width, self.x[0] + 2 * self.width
        return min(self.x), max(self.x) + self.width

    def middle(self, index: int) -> float:
        return self.x[index] + self.width / 2


@dataclass
class _Series:
    name: str
    color: str
    values: list[float | None]
    lower: list[float | None] | None = None
    upper: list[float | None] | None = None
    shift: float = 0.0  # SVG units sideways, to set apart the series of a single bucket


def _plots(policies: list[dict], buckets: _Buckets) -> list[str]:
    def column(policy: dict, key: str) -> list[float | None]:
        rows = _list(policy.get("timeseries"))
        return [
            _plottable(rows[i].get(key)) if i < len(rows) and isinstance(rows[i], dict) else None
            for i in range(len(buckets.x))
        ]

    colored = [(p, _text(p.get("name")), PALETTE[i % len(PALETTE)]) for i, p in enumerate(policies)]
    reward = [
        _Series(name, color, column(p, "ips"), column(p, "lower"), column(p, "upper"))
        for p, name, color in colored
    ]
    difference = [
        _Series(
            name,
            color,
            column(p, "difference"),
            column(p, "differenceLower"),
            column(p, "differenceUpper"),
        )
        for p, name, color in colored
        if p.get("source") != "Online"
    ]
    ess = [_Series(name, color, column(p, "effectiveSampleSize")) for p, name, color in colored]
    return [
        _section(
            "Estimated reward over time",
            "IPS estimate per policy with its interval band.",
            _line_chart("Estimated reward (IPS)", reward, buckets),
        ),
        _section(
            "Difference against the champion",
            "Paired difference challenger − Online per bucket with its interval band; "
            "above the dashed zero line the challenger does better.",
            _line_chart("Difference vs Online", difference, buckets, zero=True),
        ),
        _section("Events per bucket", "", _bar_chart(buckets)),
        _section(
            "Effective sample size over time",
            "How many events each policy's estimate is effectively based on.",
            _line_chart("Effective sample size", ess, buckets, floor=True),
        ),
    ]


def _section(title: str, caption: str, svg: str) -> str:
    note = f'<p class="sub">{escape(caption)}</p>' if caption else ""
    return f"<section><h2>{escape(title)}</h2>{note}{svg}</section>"


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


def _x_ticks(buckets: _Buckets) -> tuple[list[tuple[float, str]], str]:
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

    def __init__(self, buckets: _Buckets, y_low: float, y_high: float, legend: list[_Series]):
        self.buckets = buckets
        self.x_low, self.x_high = buckets.domain
        self.y_ticks, self.y_step = _nice_ticks(y_low, y_high)
        self.legend = self._legend(legend)
        self.top = 14 + 18 * (max((row for row, _, _ in self.legend), default=-1) + 1)
        self.bottom = self.top + _PLOT_HEIGHT
        self.height = self.bottom + _BOTTOM
        self.left, self.right = _LEFT, WIDTH - _RIGHT

    @staticmethod
    def _legend(series: list[_Series]) -> list[tuple[int, float, _Series]]:
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


def _line_chart(
    label: str, series: list[_Series], buckets: _Buckets, zero: bool = False, floor: bool = False
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


def _x(frame: _Frame, item: _Series, index: int) -> float:
    return round(frame.x(frame.buckets.middle(index)) + item.shift, 2)


def _band(frame: _Frame, item: _Series) -> list[str]:
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


def _line(frame: _Frame, item: _Series) -> list[str]:
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
                bounds = f" [{_fmt(item.lower[i])}, {_fmt(item.upper[i])}]"
            tip = f"{item.name} · {frame.buckets.labels[i]}: {_fmt(item.values[i])}{bounds}"
            x, y = points[i]
            out.append(
                f'<circle class="series-marker{hover}" data-series="{name}" cx="{x}" cy="{y}" '
                f'r="4" fill="{item.color}"><title>{escape(tip)}</title></circle>'
            )
    return out


def _bar_chart(buckets: _Buckets) -> str:
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
        tip = f"{buckets.labels[i]}: {_fmt(buckets.events[i])} events"
        out.append(
            f'<rect class="bar" x="{left}" y="{top}" width="{width}" '
            f'height="{round(base - top, 2)}"><title>{escape(tip)}</title></rect>'
        )
    out.append("</svg>")
    return "\n".join(out)
