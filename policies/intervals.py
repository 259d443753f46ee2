"""Confidence intervals of a policy value: the `Interval` record, and how its ends are computed.

- Gaussian: value ± z·sd/√n (`gaussian_interval`), two-sided or a one-sided lower bound.
- Empirical Bernstein (Maurer & Pontil 2009, theorem 4): the half width
  sqrt(2·V·ln(2/δ)/n) + 7·R·ln(2/δ)/(3(n−1)) (`bernstein_half_width`), δ = α/2 per side (δ = α
  for a one-sided bound), V the sample variance and R the range of the contributions.
- Cressie-Read empirical likelihood (`cressie_read_interval`): Karampatziakis, Mineiro & Ramdas
  (2021), as in VW's `estimators` package (`bandits/cressieread.py`), with the true weight bounds
  taken as [0, ∞). One change: where VW finds no candidate it falls back to rmin for both ends;
  this falls back to the uninformative end (rmin below, rmax above).
- Paired differences (`paired_difference`): the interval of mean(first − second) from the
  per-event contributions of two policies on the same events, Gaussian or Bernstein.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.quantiles import normal_quantile, student_t_quantile


@dataclass(frozen=True)
class Interval:
    value: float  # the point estimate
    lower: float
    upper: float
    method: str  # "gaussian", "bernstein" or "cressie-read"
    alpha: float  # 0.05 for a 95% interval

    def to_json(self) -> dict[str, Any]:
        """JSON-ready; an infinite end (one-sided, or too few events) is null."""
        return {
            "value": _finite_or_none(self.value),
            "lower": _finite_or_none(self.lower),
            "upper": _finite_or_none(self.upper),
            "method": self.method,
            "confidence": 1 - self.alpha,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# -- intervals from a mean, a spread and a count ----------------------------------------------


def check_alpha(alpha: float) -> None:
    """Refuse an α outside (0, 1) (0.05 for a 95% interval)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def gaussian_interval(
    value: float, sd: float, n: int, alpha: float, one_sided: bool = False
) -> Interval:
    """value ± z·sd/√n; `one_sided`: a lower bound at level 1 − α. Unbounded below 2 events."""
    if n < 2:
        return Interval(value, -math.inf, math.inf, "gaussian", alpha)
    half = normal_quantile(1 - (alpha if one_sided else alpha / 2)) * sd / math.sqrt(n)
    return Interval(value, value - half, math.inf if one_sided else value + half, "gaussian", alpha)


def bernstein_half_width(
    variance: float, span: float, n: int, alpha: float, one_sided: bool
) -> float:
    """The empirical Bernstein half width of a mean of n values of this variance and range."""
    if n < 2:
        return math.inf
    log = math.log(2 / (alpha if one_sided else alpha / 2))
    return math.sqrt(2 * variance * log / n) + 7 * span * log / (3 * (n - 1))


def sample_sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if x.size > 1 else math.nan


def clip_interval(interval: Interval, low: float, high: float) -> Interval:
    """Both ends moved into [low, high]; the value is kept."""
    return Interval(
        interval.value,
        min(high, max(low, interval.lower)),
        max(low, min(high, interval.upper)),
        interval.method,
        interval.alpha,
    )


# -- Cressie-Read (empirical likelihood) interval ---------------------------------------------


def cressie_read_interval(
    weights: np.ndarray,
    reward: np.ndarray,
    rmin: float,
    rmax: float,
    *,
    alpha: float = 0.05,
    wmin: float = 0.0,
    wmax: float = math.inf,
    atol: float = 1e-9,
) -> tuple[float, float]:
    """The CR(−2) interval of the policy value from weights and rewards (VW's `estimators`)."""
    n = float(weights.shape[0])
    wr = weights * reward
    sumw, sumwsq = float(weights.sum()), float(np.dot(weights, weights))
    sumwr, sumwsqr, sumwsqrsq = float(wr.sum()), float(np.dot(weights, wr)), float(np.dot(wr, wr))
    fake = wmax if sumw < n else wmin
    if fake == math.inf:
        unconstrained = 1 + 1 / n
    else:
        a, b = (fake + sumw) / (1 + n), (fake**2 + sumwsq) / (1 + n)
        unconstrained = (1 + n) * (a - 1) ** 2 / (b - a * a)
    delta = student_t_quantile(1 - alpha / 2, n) ** 2  # F(1, n)'s upper α quantile
    phi = (-unconstrained - delta) / (2 * (1 + n))
    ends = []
    for r, sign in ((rmin, 1), (rmax, -1)):
        candidates = []
        for fake in (wmin, wmax):
            if fake == math.inf:
                x = sign * (r + (sumwr - sumw * r) / n)
                y = (r * sumw - sumwr) ** 2 / (n * (1 + n)) - (
                    r * r * sumwsq - 2 * r * sumwsqr + sumwsqrsq
                ) / (1 + n)
                z = phi + 1 / (2 * n)
            else:
                barw = (fake + sumw) / (1 + n)
                barwsq = (fake * fake + sumwsq) / (1 + n)
                barwr = sign * (fake * r + sumwr) / (1 + n)
                barwsqr = sign * (fake * fake * r + sumwsqr) / (1 + n)
                barwsqrsq = (fake * fake * r * r + sumwsqrsq) / (1 + n)
                spread = barwsq - barw * barw
                if spread <= 0:
                    continue
                x = barwr + (1 - barw) * (barwsqr - barw * barwr) / spread
                y = (barwsqr - barw * barwr) ** 2 / spread - (barwsqrsq - barwr * barwr)
                z = phi + 0.5 * (1 - barw) ** 2 / spread
            if math.isclose(y * z, 0, abs_tol=atol * atol):
                candidates.append(x - math.sqrt(2) * atol)
            elif z <= 0 and y * z >= 0:
                candidates.append(x - math.sqrt(2 * y * z))
        end = sign * min(candidates) if candidates else (rmin if sign > 0 else rmax)
        ends.append(min(rmax, max(rmin, end)))
    return ends[0], ends[1]


# -- paired differences -----------------------------------------------------------------------


def paired_difference(
    first: np.ndarray,
    second: np.ndarray,
    *,
    alpha: float = 0.05,
    one_sided: bool = False,
    method: str = "gaussian",
    bound: float | None = None,
) -> Interval:
    """Interval of mean(first − second), the per-event contributions of two policies on the same
    events. `one_sided`: a lower bound at level 1 − α (upper = +∞). `bound`: a known bound on
    |first − second| per event, for "bernstein" (else the observed range of the differences)."""
    check_alpha(alpha)
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.ndim != 1 or first.shape != second.shape:
        raise ValueError(
            f"first and second must be 1-d of one length: {first.shape}, {second.shape}"
        )
    if first.size == 0:
        raise ValueError("no events: a difference needs at least one")
    d = first - second
    value, n = float(d.mean()), int(d.size)
    if method == "gaussian":
        return gaussian_interval(value, sample_sd(d), n, alpha, one_sided)
    if method != "bernstein":
        raise ValueError(f"method must be 'gaussian' or 'bernstein', got {method!r}")
    span = 2 * float(bound) if bound is not None else float(np.ptp(d))
    if bound is not None and np.abs(d).max() > bound:
        raise ValueError(f"a difference exceeds the given bound {bound}")
    half = bernstein_half_width(
        float(np.var(d, ddof=1)) if n > 1 else math.nan, span, n, alpha, one_sided
    )
    return Interval(
        value, value - half, math.inf if one_sided else value + half, "bernstein", alpha
    )
