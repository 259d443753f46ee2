"""`decision-service evaluate`: an offline evaluation from the command line.

It runs the same job as `POST evaluations` (`app.loop.evaluations.evaluate`) against the
service's database, read-only, with a progress bar on stderr, and writes `report.json` and a
self-contained `report.html` into `--out`.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from app.custom_policies import MAX_CUSTOM_POLICIES, CustomPolicyError, check_count, validated
from app.loop.evaluations import FIXED, NoEvents, evaluate_window
from app.report import render_html
from app.store.db import OperationalError, sync_engine
from app.timestamps import parse_moment


class UsageError(ValueError):
    """A command-line value that cannot be used; the message says why."""


def parse_time(value: str, flag: str) -> datetime:
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def parse_policies(given: list[str]) -> list[dict[str, str]]:
    """`NAME=ARGS` pairs → custom policies (validated, names unique)."""
    pairs = []
    try:
        check_count(len(given))
        for item in given:
            name, sep, arguments = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise UsageError(f"--policy expects NAME=\"VW ARGUMENTS\", got '{item}'")
            pairs.append((name, arguments))
        return validated(pairs)
    except CustomPolicyError as exc:
        if exc.reason == "too-many":
            raise UsageError(f"at most {MAX_CUSTOM_POLICIES} --policy options") from None
        if exc.reason == "duplicate":
            raise UsageError(
                f"--policy {exc.name}: names must be unique and not {', '.join(FIXED)}"
            ) from None
        raise UsageError(f"--policy {exc.name}: {exc}") from None


class ProgressBar:
    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._started = time.monotonic()
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            if self._stage:
                self._stream.write("\n")
            self._stage, self._started = stage, time.monotonic()
        filled = int(self._width * done / max(total, 1))
        elapsed = time.monotonic() - self._started
        rate = f" ({done / elapsed:,.0f}/s)" if elapsed > 0.5 else ""
        self._stream.write(
            f"\r{stage:<9} [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total}{rate}"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._stage:
            self._stream.write("\n")
            self._stream.flush()


def run(
    database_url: str,
    *,
    start: datetime,
    end: datetime,
    policies: list[dict[str, str]],
    optimization: bool,
    out: Path,
    name: str,
) -> dict:
    """Evaluate and write the report files; returns the report data."""
    if start >= end:
        raise UsageError("--start must be before --end")
    meta = {
        "id": f"cli-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}",
        "name": name,
        "startTime": start.isoformat(),
        "endTime": end.isoformat(),
        "createdAt": datetime.now(UTC).isoformat(),
        "evaluationType": "Manual",
    }
    engine = sync_engine(database_url)
    bar = ProgressBar()
    try:
        data = evaluate_window(
            engine,
            read_only=True,
            start=start,
            end=end,
            custom=policies,
            optimization=optimization,
            meta=meta,
            progress=bar,
        )
    except NoEvents as exc:
        raise UsageError(str(exc)) from None
    except OperationalError as exc:
        raise UsageError(f"cannot read the database: {exc.orig}") from None
    finally:
        bar.close()
        engine.dispose()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=1, allow_nan=False))
    (out / "report.html").write_text(render_html(data), encoding="utf-8")
    return data


def summary(data: dict) -> str:
    """A plain table of the policies' estimates."""
    lines = [f"{'policy':<20} {'source':<22} {'IPS':>8} {'95% interval':>20} {'vs Online':>10}"]
    for policy in data["policies"]:
        ips, diff = policy["total"]["ips"], policy["total"].get("difference")

        def fmt(x: float | None) -> str:
            return "—" if x is None else f"{x:.4f}"

        interval = f"[{fmt(ips['lower'])}, {fmt(ips['upper'])}]"
        lines.append(
            f"{policy['name'][:20]:<20} {policy['source']:<22} {fmt(ips['value']):>8} "
            f"{interval:>20} {fmt(diff['value']) if diff else '':>10}"
        )
    lines.append(f"{data['events']} events; optimal policy: {data['optimalPolicy']}")
    return "\n".join(lines)
