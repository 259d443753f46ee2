"""Personalizer's evaluation report data from a replay, and the same report in wider buckets.

`report` gives, per policy, its totals over the events (IPS, SNIPS, DM and DR with their
intervals, the effective sample size, the paired difference with the online policy, Personalizer's
v1.0 summary fields) and a timeseries of time buckets. Each bucket keeps its additive sums
(`policies.moments`) under "sums", so `regroup` builds wider buckets, rolling or expanding, from
the report alone. The data is JSON-serializable, with null for any non-finite number.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from policies.estimators import (
    DM,
    DR,
    IPS,
    SNIPS,
    effective_sample_size,
    importance_weights,
    max_weight,
)
from policies.intervals import Interval, paired_difference
from policies.moments import MeanMoments, Moments
from policies.replay import NON_LEARNING, ReplayResult

INTERVALS = (5, 60, 360, 720, 1440)  # candidate bucket widths, minutes
MAX_BUCKETS = 200
ALPHA = 0.05
WINDOWS = ("Rolling", "Expanding")


def report(
    result: ReplayResult,
    *,
    meta: dict,
    interval_minutes: int | None = None,
    online: str = "Online",
) -> dict:
    """The report data (JSON-serializable, null for any non-finite number). Needs ≥ 1 event."""
    if result.events == 0:
        raise ValueError("no events to report on")
    minutes = interval_minutes or choose_interval(result.timestamp)
    starts, bucket = np.unique(
        np.floor_divide(result.timestamp, minutes * 60).astype(np.int64), return_inverse=True
    )
    online_index = result.index(online)
    online_rounds = None
    if online_index is not None:
        online_rounds = IPS().round_rewards(**result.feedback(online_index))
    policies = [
        _policy_report(result, i, bucket, len(starts), None if i == online_index else online_rounds)
        for i in range(len(result.specs))
    ]
    values = [p["total"]["ips"]["value"] for p in policies]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    best = [p["name"] for p, v in zip(policies, values, strict=True) if finite and v == max(finite)]
    return _plain(
        {
            "evaluation": meta,
            "events": result.events,
            "intervalMinutes": minutes,
            "bucketStarts": [_iso(int(s) * minutes * 60) for s in starts],
            "bucketEvents": np.bincount(bucket, minlength=len(starts)).tolist(),
            "policies": policies,
            "optimalPolicy": online if online in best or not best else best[0],
        }
    )


def choose_interval(timestamp: np.ndarray) -> int:
    """The smallest of INTERVALS giving at most MAX_BUCKETS buckets over the time span."""
    if len(timestamp) == 0:
        return INTERVALS[0]
    first, last = float(np.min(timestamp)), float(np.max(timestamp))
    for minutes in INTERVALS:
        width = minutes * 60
        if last // width - first // width + 1 <= MAX_BUCKETS:
            return minutes
    return INTERVALS[-1]


def _policy_report(
    result: ReplayResult,
    i: int,
    bucket: np.ndarray,
    buckets: int,
    online_rounds: np.ndarray | None,
) -> dict:
    spec, feedback = result.specs[i], result.feedback(i)
    weights = importance_weights(
        action=feedback["action"], pscore=feedback["pscore"], action_dist=feedback["action_dist"]
    )
    rounds = IPS().round_rewards(**feedback)
    n = result.events
    total: dict[str, Any] = {
        "events": n,
        "nonZeroProbability": result.non_zero(i),
        "ips": IPS().estimate_interval(**feedback, alpha=ALPHA).to_json(),
        "ipsRobust": IPS().estimate_interval(**feedback, alpha=ALPHA, method="bernstein").to_json(),
        "snips": _snips(feedback, "gaussian"),
        "snipsRobust": _snips(feedback, "cressie-read"),
        "dm": DM().estimate_policy_value(**feedback),
        "dr": DR().estimate_interval(**feedback, alpha=ALPHA).to_json(),
        "effectiveSampleSize": effective_sample_size(weights),
        "maxWeight": max_weight(weights),
        "difference": None,
    }
    differences: list[MeanMoments | None] = [None] * buckets
    if online_rounds is not None:
        diff = paired_difference(rounds, online_rounds, alpha=ALPHA)
        lower = paired_difference(rounds, online_rounds, alpha=ALPHA, one_sided=True).lower
        total["difference"] = {**diff.to_json(), "lowerBound95": lower}
        differences = MeanMoments.per_bucket(rounds - online_rounds, bucket, buckets)
    total.update(
        _summary(
            float(np.sum(rounds)),
            n,
            float(np.sum(weights)),
            float(np.sum(rounds * rounds)),
            total["nonZeroProbability"],
        )
    )
    moments = Moments.per_bucket(weights, feedback["reward"], bucket, buckets)
    non_zero = np.bincount(bucket, weights=result.p_logged[i] > 0, minlength=buckets)
    timeseries = [
        _bucket_entry(
            {
                "moments": _plain(asdict(m)),
                "difference": None if d is None else _plain(asdict(d)),
                "nonZeroProbability": int(z),
            }
        )
        for m, d, z in zip(moments, differences, non_zero, strict=True)
    ]
    return {
        "name": spec.name,
        "source": spec.source,
        "arguments": None if spec.source in NON_LEARNING else spec.arguments,
        "total": total,
        "timeseries": timeseries,
    }


def _snips(feedback: dict[str, np.ndarray], method: str) -> dict[str, Any]:
    """SNIPS is undefined (null) when the policy gives 0 to every logged action."""
    if not np.any(feedback["action_dist"][:, 0] > 0):
        return Interval(math.nan, math.nan, math.nan, method, ALPHA).to_json()
    return SNIPS().estimate_interval(**feedback, alpha=ALPHA, method=method).to_json()


def _summary(
    numerator: float, n: int, snips_denominator: float, squares: float, non_zero: int
) -> dict[str, Any]:
    """Personalizer's v1.0 summary fields (MWT dashboard aggregates)."""
    average = numerator / n if n else 0.0
    spread = 0.0
    if n >= 2:
        spread = 1.96 * math.sqrt(max(squares / n - average * average, 0.0) / (n - 1))
    return {
        "ipsEstimatorNumerator": numerator,
        "ipsEstimatorDenominator": n,
        "snipsEstimatorDenominator": snips_denominator,
        "sumOfSquares": squares,
        "confidenceInterval": spread,
        "averageReward": average,
        "nonZeroProbability": non_zero,
    }


def _bucket_entry(sums: dict) -> dict:
    """One timeseries entry from its additive sums (kept under "sums" for `regroup`)."""
    m = Moments(**sums["moments"])
    ips = m.ips(ALPHA)
    d = None if sums["difference"] is None else MeanMoments(**sums["difference"]).interval(ALPHA)
    return {
        "events": m.n,
        "ips": ips.value,
        "lower": ips.lower,
        "upper": ips.upper,
        "snips": m.snips(ALPHA).value if m.sum_w > 0 else None,
        "effectiveSampleSize": m.effective_sample_size,
        "difference": None if d is None else d.value,
        "differenceLower": None if d is None else d.lower,
        "differenceUpper": None if d is None else d.upper,
        **_summary(m.sum_wr, m.n, m.sum_w, m.sum_wr2, sums["nonZeroProbability"]),
        "sums": sums,
    }


def regroup(report: dict, interval_minutes: int, window: str = "Rolling") -> dict:
    """A copy of `report` with its timeseries in buckets of `interval_minutes` (a multiple of
    the report's): "Rolling" sums each bucket's events, "Expanding" all events up to its end."""
    base = report["intervalMinutes"]
    if interval_minutes <= 0 or interval_minutes % base:
        raise ValueError(f"interval must be a positive multiple of {base} minutes")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    width = interval_minutes * 60
    keys = [int(_epoch(s) // width) for s in report["bucketStarts"]]
    starts = sorted(set(keys))
    position = {key: j for j, key in enumerate(starts)}
    groups = [position[key] for key in keys]

    def combine(items: list) -> list:
        out = [None] * len(starts)
        for j, item in zip(groups, items, strict=True):
            out[j] = item if out[j] is None else _add(out[j], item)
        if window == "Expanding":
            for j in range(1, len(out)):
                out[j] = _add(out[j - 1], out[j])
        return out

    policies = [
        {
            **policy,
            "timeseries": [
                _plain(_bucket_entry(sums))
                for sums in combine([entry["sums"] for entry in policy["timeseries"]])
            ],
        }
        for policy in report["policies"]
    ]
    return {
        **report,
        "intervalMinutes": interval_minutes,
        "bucketStarts": [_iso(key * width) for key in starts],
        "bucketEvents": combine(list(report["bucketEvents"])),
        "policies": policies,
    }


def _add(a: Any, b: Any) -> Any:
    """Field-wise sum of two sums records (dicts of numbers, or None for no difference)."""
    if isinstance(a, dict):
        return {key: _add(a[key], b[key]) for key in a}
    if a is None or b is None:
        return None
    return a + b


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, non-finite floats to None."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
