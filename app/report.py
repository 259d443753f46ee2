"""An offline-evaluation report as one self-contained HTML page: a summary table per policy and
inline SVG plots drawn here, in Python. Nothing on the page loads from the network; hovering a
point shows its value through the SVG's own <title> tooltips, so no script is needed."""

from __future__ import annotations

import json
from html import escape

from app.charts import FULL_TIME, Buckets, Series, bar_chart, line_chart
from app.report_values import as_items, as_moment, as_number, as_plottable, as_text, formatted

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
    name = as_text(evaluation.get("name")) or as_text(evaluation.get("id")) or "Offline evaluation"
    policies = [p for p in as_items(report.get("policies")) if isinstance(p, dict)]
    buckets = Buckets.of(report)
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


def _when(value: object) -> str:
    """A timestamp as compact UTC text (already escaped)."""
    moment = as_moment(value)
    if moment is None:
        return escape(as_text(value)) or "—"
    return moment.strftime(FULL_TIME + (":%S" if moment.second else "")) + " UTC"


def _window(start: object, end: object) -> str:
    first, last = as_moment(start), as_moment(end)
    if first and last and first.date() == last.date():
        return f"{first.strftime(FULL_TIME)} – {last.strftime('%H:%M')} UTC"
    return f"{_when(start).removesuffix(' UTC')} – {_when(end)}"


def _confidence(value: object) -> str:
    level = as_number(value)
    if level is None:
        return ""
    return f"{level * 100:g}%" if level <= 1 else f"{level:g}%"


def _interval(value: object, bounds_only: bool = False, also: str = "") -> str:
    """A `{"value","lower","upper","method","confidence"}` cell: the value over its interval, or
    only the interval (the value then in the tooltip)."""
    if not isinstance(value, dict):
        return "<td>—</td>"
    about = " ".join(
        s for s in (_confidence(value.get("confidence")), as_text(value.get("method"))) if s
    )
    title = ", ".join(t for t in (f"{about} interval" if about else "interval", also) if t)
    bounds = f"[{formatted(value.get('lower'))}, {formatted(value.get('upper'))}]"
    if bounds_only:
        title = f"{formatted(value.get('value'))}, {title}"
        return f'<td title="{escape(title)}">{bounds}</td>'
    body = f'{formatted(value.get("value"))}<span class="iv">{bounds}</span>'
    return f'<td title="{escape(title)}">{body}</td>'


# --- page sections ------------------------------------------------------------------------------


def _header(report: dict, evaluation: dict, name: str) -> str:
    window = _window(evaluation.get("startTime"), evaluation.get("endTime"))
    minutes = as_number(report.get("intervalMinutes"))
    facts = [f"{formatted(report.get('events'))} events"]
    if minutes:
        facts.append(f"{minutes:g}-minute buckets")
    meta = {"Id": escape(as_text(evaluation.get("id"))) or "—"}
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
    reasons = "".join(f"<li>{escape(as_text(r))}</li>" for r in as_items(promotion.get("reasons")))
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
        return formatted(value)
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
        name = as_text(policy.get("name"))
        is_optimal = optimal is not None and name == as_text(optimal)
        badge = '<span class="badge">optimal</span>' if is_optimal else ""
        swatch = f'<span class="swatch" style="background:{PALETTE[index % len(PALETTE)]}"></span>'
        arguments = policy.get("arguments")
        code = f"<br><code>{escape(as_text(arguments))}</code>" if arguments else ""
        difference = total.get("difference")
        bound = as_number(difference.get("lowerBound95")) if isinstance(difference, dict) else None
        sign = "" if bound is None else ' class="pos"' if bound > 0 else ' class="neg"'
        cells = [
            f'<td class="text">{swatch}{escape(name) or "—"}{badge}{code}</td>',
            f'<td class="text">{escape(as_text(policy.get("source"))) or "—"}</td>',
            f"<td>{formatted(total.get('nonZeroProbability'))} / {formatted(total.get('events'))}</td>",
            _interval(total.get("ips")),
            _interval(total.get("ipsRobust"), bounds_only=True),
            _interval(total.get("snips")),
            _interval(total.get("dr"), also=f"direct method {formatted(total.get('dm'))}"),
            f"<td>{formatted(total.get('effectiveSampleSize'))}</td>",
            f"<td>{formatted(total.get('maxWeight'))}</td>",
            _interval(difference),
            f"<td{sign}>{formatted(bound)}</td>",
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


def _plots(policies: list[dict], buckets: Buckets) -> list[str]:
    def column(policy: dict, key: str) -> list[float | None]:
        rows = as_items(policy.get("timeseries"))
        return [
            as_plottable(rows[i].get(key)) if i < len(rows) and isinstance(rows[i], dict) else None
            for i in range(len(buckets.x))
        ]

    colored = [
        (p, as_text(p.get("name")), PALETTE[i % len(PALETTE)]) for i, p in enumerate(policies)
    ]
    reward = [
        Series(name, color, column(p, "ips"), column(p, "lower"), column(p, "upper"))
        for p, name, color in colored
    ]
    difference = [
        Series(
            name,
            color,
            column(p, "difference"),
            column(p, "differenceLower"),
            column(p, "differenceUpper"),
        )
        for p, name, color in colored
        if p.get("source") != "Online"
    ]
    ess = [Series(name, color, column(p, "effectiveSampleSize")) for p, name, color in colored]
    return [
        _section(
            "Estimated reward over time",
            "IPS estimate per policy with its interval band.",
            line_chart("Estimated reward (IPS)", reward, buckets),
        ),
        _section(
            "Difference against the champion",
            "Paired difference challenger − Online per bucket with its interval band; "
            "above the dashed zero line the challenger does better.",
            line_chart("Difference vs Online", difference, buckets, zero=True),
        ),
        _section("Events per bucket", "", bar_chart(buckets)),
        _section(
            "Effective sample size over time",
            "How many events each policy's estimate is effectively based on.",
            line_chart("Effective sample size", ess, buckets, floor=True),
        ),
    ]


def _section(title: str, caption: str, svg: str) -> str:
    note = f'<p class="sub">{escape(caption)}</p>' if caption else ""
    return f"<section><h2>{escape(title)}</h2>{note}{svg}</section>"
