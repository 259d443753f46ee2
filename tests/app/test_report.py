"""The offline-evaluation report page: self-contained HTML with inline SVG plots, escaped input."""

from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.report import render_html

BUCKETS = 20
NAMES = ("Online", "Baseline", "Random", "<script>alert('x')</script> & co")


def _interval(value: float, half: float) -> dict:
    return {
        "value": value,
        "lower": value - half,
        "upper": value + half,
        "method": "gaussian",
        "confidence": 0.95,
    }


def _policy(name: str, source: str, level: float, rng: random.Random, buckets: int) -> dict:
    online = source == "Online"
    timeseries = []
    for _ in range(buckets):
        ips = level + rng.uniform(-0.05, 0.05)
        half = rng.uniform(0.02, 0.08)
        difference = None if online else ips - 0.5
        timeseries.append(
            {
                "events": 120,
                "ips": ips,
                "lower": ips - half,
                "upper": ips + half,
                "snips": ips + 0.01,
                "effectiveSampleSize": 120.0 if online else rng.uniform(20, 90),
                "difference": difference,
                "differenceLower": None if online else difference - half,
                "differenceUpper": None if online else difference + half,
                "averageReward": 0.5,
            }
        )
    difference = None if online else {**_interval(level - 0.5, 0.01), "lowerBound95": level - 0.51}
    total = {
        "events": 120 * buckets,
        "nonZeroProbability": 120 * buckets if online else 70 * buckets,
        "ips": _interval(level, 0.01),
        "ipsRobust": _interval(level, 0.02),
        "snips": _interval(level + 0.001, 0.01),
        "snipsRobust": _interval(level + 0.001, 0.02),
        "dm": level - 0.02,
        "dr": _interval(level - 0.01, 0.012),
        "effectiveSampleSize": 120.0 * buckets if online else 55.5 * buckets,
        "maxWeight": 1.0 if online else 8.25,
        "difference": difference,
        "ipsEstimatorNumerator": level * 120 * buckets,
        "ipsEstimatorDenominator": 120 * buckets,
        "snipsEstimatorDenominator": 120.0 * buckets,
        "sumOfSquares": 1.0,
        "confidenceInterval": 0.01,
        "averageReward": 0.5,
    }
    arguments = None if online else f"--cb_explore_adf --epsilon 0.2 -q {name[:2]}"
    return {
        "name": name,
        "source": source,
        "arguments": arguments,
        "total": total,
        "timeseries": timeseries,
    }


def make_report(buckets: int = BUCKETS, seed: int = 7) -> dict:
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    starts = [start + timedelta(minutes=30 * i) for i in range(buckets)]
    sources = ("Online", "Baseline", "Random", "Custom")
    levels = (0.5, 0.47, 0.31, 0.56)
    return {
        "evaluation": {
            "id": "eval-1",
            "name": "Weekly check <b>",
            "startTime": "2024-05-01T06:00:00Z",
            "endTime": "2024-05-01T16:00:00Z",
            "createdAt": "2024-05-01T16:05:00Z",
            "status": "Succeeded",
        },
        "events": 120 * buckets,
        "intervalMinutes": 30,
        "bucketStarts": [s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in starts],
        "bucketEvents": [100 + rng.randrange(50) for _ in range(buckets)],
        "policies": [
            _policy(name, source, level, rng, buckets)
            for name, source, level in zip(NAMES, sources, levels, strict=True)
        ],
        "optimalPolicy": NAMES[3],
        "promotion": {
            "promote": True,
            "reasons": ["lower bound 0.05 > 0 <ok>"],
            "evidence": {"lowerBound95": 0.05, "events": 2400, "policy": NAMES[3], "x": [1]},
        },
    }


class Page(HTMLParser):
    """Every start tag with its attributes, the chain of open tags, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.svgs: list[list[tuple[str, dict[str, str]]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = (tag, {k: v or "" for k, v in attrs})
        self.tags.append(element)
        if tag == "svg":
            self.svgs.append([element])
        elif self.svgs:
            self.svgs[-1].append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, klass: str) -> list[dict[str, str]]:
        return [a for _, a in self.tags if klass in a.get("class", "").split()]


def _points(element: tuple[str, dict[str, str]]) -> list[tuple[float, float]]:
    tag, attrs = element
    text = attrs.get("points", "") if tag == "polyline" else attrs.get("d", "")
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def _viewbox(svg: tuple[str, dict[str, str]]) -> tuple[float, float, float, float]:
    # html.parser lowercases attribute names
    x, y, w, h = (float(v) for v in svg[1]["viewbox"].split())
    return x, y, w, h


def _check_inside(svg: list, element: tuple[str, dict[str, str]]) -> list[tuple[float, float]]:
    x0, y0, width, height = _viewbox(svg[0])
    points = _points(element)
    for x, y in points:
        assert math.isfinite(x) and math.isfinite(y)
        assert x0 <= x <= x0 + width and y0 <= y <= y0 + height, (x, y, element)
    return points


def test_plots_draw_every_policy() -> None:
    report = make_report()
    page = Page(render_html(report))
    assert len(page.svgs) >= 4
    reward, difference, events, ess = page.svgs[:4]
    for svg, names in (
        (reward, NAMES),
        (difference, NAMES[1:]),
        (ess, NAMES),
    ):
        for name in names:
            lines = [
                e
                for e in svg
                if e[1].get("data-series") == name and "series-line" in e[1].get("class", "")
            ]
            assert len(lines) == 1, name
            assert lines[0][0] in ("path", "polyline")
            assert len(_check_inside(svg, lines[0])) >= BUCKETS
    for svg, names in ((reward, NAMES), (difference, NAMES[1:])):
        for name in names:
            bands = [
                e
                for e in svg
                if e[1].get("data-series") == name and "series-band" in e[1].get("class", "")
            ]
            assert len(bands) == 1, name
            assert len(_check_inside(svg, bands[0])) >= 2 * BUCKETS
    # the champion has no difference against itself
    assert not [e for e in difference if e[1].get("data-series") == NAMES[0]]
    assert [e for e in difference if "zero-line" in e[1].get("class", "")]
    bars = [e for e in events if "bar" in e[1].get("class", "").split()]
    assert len(bars) == BUCKETS
    heights = [float(b[1]["height"]) for b in bars]
    assert all(h > 0 for h in heights)
    tallest = max(range(BUCKETS), key=lambda i: report["bucketEvents"][i])
    assert heights[tallest] == max(heights)
    for svg in page.svgs[:4]:  # axes with tick labels
        assert len([e for e in svg if e[0] == "text" and "tick" in e[1].get("class", "")]) >= 4


def test_the_page_loads_nothing_from_the_network() -> None:
    text = render_html(make_report())
    page = Page(text)
    for tag, attrs in page.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        if tag == "script":
            assert "src" not in attrs
        for key in ("src", "href", "xlink:href", "style"):
            assert "http:" not in attrs.get(key, "") and "https:" not in attrs.get(key, "")
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert "@import" not in text and "@font-face" not in text


def test_user_strings_are_escaped() -> None:
    text = render_html(make_report())
    assert "<script>" not in text and "<b>" not in text and "<ok>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text
    page = Page(text)
    assert not [t for t, _ in page.tags if t in ("script", "b")]
    # the optimal policy's row is highlighted, its name intact after unescaping
    rows = page.find("optimal")
    assert len(rows) == 1
    assert NAMES[3] in "".join(page.text)
    assert "Weekly check <b>" in "".join(page.text)


def test_summary_table_shows_the_estimates() -> None:
    page = Page(render_html(make_report()))
    text = "".join(page.text)
    assert "0.5600" in text and "[0.5500, 0.5700]" in text  # IPS of the optimal policy
    assert "8.2500" in text and "2,400" in text  # max weight, events
    titles = [a.get("title", "") for _, a in page.tags]
    assert "95% gaussian interval, direct method 0.5400" in titles  # DR of the optimal policy
    assert "--cb_explore_adf --epsilon 0.2" in text
    assert "Promote" in text and "lower bound 0.05 > 0 <ok>" in text
    codes = [a for t, a in page.tags if t == "code"]
    assert len(codes) >= 3


def test_nulls_render_as_dashes() -> None:
    report = make_report(buckets=5)
    policy = report["policies"][1]
    policy["total"]["ips"] = None
    policy["total"]["dm"] = None
    policy["total"]["snips"]["lower"] = None
    policy["timeseries"][2].update(ips=None, lower=None, upper=None, difference=float("nan"))
    policy["timeseries"][2]["effectiveSampleSize"] = None
    page = Page(render_html(report))
    assert "—" in "".join(page.text)
    reward = page.svgs[0]
    line = next(e for e in reward if e[1].get("data-series") == NAMES[1] and e[0] == "path")
    assert line[1]["class"] == "series-band"
    assert line[1]["d"].count("M") == 2  # the gap splits the band
    line = next(
        e for e in reward if e[1].get("data-series") == NAMES[1] and e[1]["class"] == "series-line"
    )
    assert line[1]["d"].count("M") == 2  # the gap breaks the line
    assert len(_check_inside(reward, line)) == 4


def test_empty_report_renders() -> None:
    report = make_report(buckets=0)
    report["events"] = 0
    report["optimalPolicy"] = None
    del report["promotion"]
    text = render_html(report)
    assert "No events in this window" in text
    Page(text)
    bare = render_html({"evaluation": {}, "events": 0, "bucketStarts": [], "policies": []})
    assert "No events in this window" in bare and "No policies" in bare


def test_single_bucket_draws_markers() -> None:
    page = Page(render_html(make_report(buckets=1)))
    reward, difference, events, ess = page.svgs[:4]
    for svg in (reward, ess):
        markers = [e for e in svg if "series-marker" in e[1].get("class", "")]
        assert {m[1]["data-series"] for m in markers} == set(NAMES)
        for marker in markers:
            assert "hover" not in marker[1]["class"].split()  # visible, not only on hover
            x0, y0, width, height = _viewbox(svg[0])
            assert x0 <= float(marker[1]["cx"]) <= x0 + width
            assert y0 <= float(marker[1]["cy"]) <= y0 + height
        for element in svg:
            if "series-band" in element[1].get("class", ""):
                assert len(_check_inside(svg, element)) == 4  # a box, not a zero-width band
    assert len([e for e in difference if "series-marker" in e[1].get("class", "")]) == 3
    assert len([e for e in events if "bar" in e[1].get("class", "").split()]) == 1


def test_identical_values_and_unparseable_times() -> None:
    report = make_report(buckets=3)
    report["bucketStarts"] = ["a", "b", "c"]
    report["intervalMinutes"] = None
    for policy in report["policies"]:
        for row in policy["timeseries"]:
            row.update(ips=0.5, lower=0.5, upper=0.5, effectiveSampleSize=7.0)
    page = Page(render_html(report))
    reward = page.svgs[0]
    lines = [e for e in reward if "series-line" in e[1].get("class", "")]
    assert sorted(e[1]["data-series"] for e in lines) == sorted(NAMES)  # the loop checks them all
    for line in lines:
        assert len(_check_inside(reward, line)) == 3  # a point per bucket, each inside the plot


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed")
def test_renders_in_a_browser(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(make_report()), encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2600",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 10_000
