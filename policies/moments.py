"""Additive sums of per-event vectors, from which the Gaussian intervals are computed again.

`Moments` holds one policy's sums of weights and rewards: its IPS and SNIPS Gaussian intervals,
equal, to rounding, to those of `policies.estimators` on the same events. `MeanMoments` holds
(n, Σx, Σx²) of any per-event vector: its Gaussian interval. Both add up, so per-bucket (e.g.
per-hour) sums can be stored and added up later to give the intervals of the union.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policies.intervals import Interval, check_alpha, gaussian_interval


def _bucketed(bucket: np.ndarray, buckets: int, size: int) -> np.ndarray:
    bucket = np.asarray(bucket)
    if bucket.shape != (size,) or not np.issubdtype(bucket.dtype, np.integer):
        raise ValueError(f"bucket must be {size} integer ids")
    if size and (bucket.min() < 0 or bucket.max() >= buckets):
        raise ValueError(f"bucket ids must be in [0, {buckets})")
    return bucket


@dataclass(frozen=True)
class Moments:
    """Additive sums of one policy's weights and rewards: its IPS and SNIPS Gaussian intervals."""

    n: int
    sum_w: float
    sum_w2: float
    sum_wr: float
    sum_wr2: float  # Σ (w·r)²
    sum_w2r: float  # Σ w²·r

    @classmethod
    def of(cls, weights, reward) -> Moments:
        w, r = np.asarray(weights, dtype=float), np.asarray(reward, dtype=float)
        if w.ndim != 1 or w.shape != r.shape:
            raise ValueError(f"weights and reward must be 1-d of one length: {w.shape}, {r.shape}")
        wr = w * r
        return cls(
            int(w.size),
            float(w.sum()),
            float(np.dot(w, w)),
            float(wr.sum()),
            float(np.dot(wr, wr)),
            float(np.dot(w, wr)),
        )

    @classmethod
    def per_bucket(cls, weights, reward, bucket: np.ndarray, buckets: int) -> list[Moments]:
        w, r = np.asarray(weights, dtype=float), np.asarray(reward, dtype=float)
        if w.ndim != 1 or w.shape != r.shape:
            raise ValueError(f"weights and reward must be 1-d of one length: {w.shape}, {r.shape}")
        bucket = _bucketed(bucket, buckets, w.size)
        wr = w * r
        sums = [
            np.bincount(bucket, weights=v, minlength=buckets)
            for v in (w, w * w, wr, wr * wr, w * wr)
        ]
        counts = np.bincount(bucket, minlength=buckets)
        return [cls(int(counts[b]), *(float(s[b]) for s in sums)) for b in range(buckets)]

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n,
            self.sum_w + other.sum_w,
            self.sum_w2 + other.sum_w2,
            self.sum_wr + other.sum_wr,
            self.sum_wr2 + other.sum_wr2,
            self.sum_w2r + other.sum_w2r,
        )

    def ips(self, alpha: float = 0.05) -> Interval:
        check_alpha(alpha)
        if self.n == 0:
            raise ValueError("no events: an estimate needs at least one")
        value = self.sum_wr / self.n
        variance = max(0.0, self.sum_wr2 - self.n * value * value) / max(1, self.n - 1)
        return gaussian_interval(value, math.sqrt(variance), self.n, alpha)

    def snips(self, alpha: float = 0.05) -> Interval:
        check_alpha(alpha)
        if self.n == 0:
            raise ValueError("no events: an estimate needs at least one")
        if self.sum_w <= 0:
            raise ValueError("SNIPS is undefined: the policy gives 0 to every logged action")
        value = self.sum_wr / self.sum_w
        # Σ (w·(r − V))² = Σ(wr)² − 2V·Σw²r + V²·Σw², then the delta method's / mean(w)².
        squares = self.sum_wr2 - 2 * value * self.sum_w2r + value * value * self.sum_w2
        mean_w = self.sum_w / self.n
        variance = max(0.0, squares) / max(1, self.n - 1) / (mean_w * mean_w)
        return gaussian_interval(value, math.sqrt(variance), self.n, alpha)

    @property
    def effective_sample_size(self) -> float:
        return self.sum_w**2 / self.sum_w2 if self.sum_w2 > 0 else 0.0


@dataclass(frozen=True)
class MeanMoments:
    """Additive (n, Σx, Σx²) of any per-event vector: its Gaussian interval."""

    n: int
    total: float
    total_sq: float

    @classmethod
    def of(cls, x) -> MeanMoments:
        x = np.asarray(x, dtype=float)
        if x.ndim != 1:
            raise ValueError(f"x must be 1-d, got shape {x.shape}")
        return cls(int(x.size), float(x.sum()), float(np.dot(x, x)))

    @classmethod
    def per_bucket(cls, x, bucket: np.ndarray, buckets: int) -> list[MeanMoments]:
        x = np.asarray(x, dtype=float)
        if x.ndim != 1:
            raise ValueError(f"x must be 1-d, got shape {x.shape}")
        bucket = _bucketed(bucket, buckets, x.size)
        counts = np.bincount(bucket, minlength=buckets)
        totals = np.bincount(bucket, weights=x, minlength=buckets)
        squares = np.bincount(bucket, weights=x * x, minlength=buckets)
        return [cls(int(counts[b]), float(totals[b]), float(squares[b])) for b in range(buckets)]

    def __add__(self, other: MeanMoments) -> MeanMoments:
        return MeanMoments(
            self.n + other.n, self.total + other.total, self.total_sq + other.total_sq
        )

    def interval(self, alpha: float = 0.05, one_sided: bool = False) -> Interval:
        check_alpha(alpha)
        if self.n == 0:
            raise ValueError("no events: an estimate needs at least one")
        value = self.total / self.n
        variance = max(0.0, self.total_sq - self.n * value * value) / max(1, self.n - 1)
        return gaussian_interval(value, math.sqrt(variance), self.n, alpha, one_sided)
