"""Off-policy estimators of a policy's expected reward from logged bandit events, with intervals.

Arrays follow Open Bandit Pipeline's single-slot convention: `reward` (n,), `action` (n,) the
logged action's index, `pscore` (n,) the logging probability of that action, `action_dist`
(n, K) the evaluated policy's probabilities (rows may end in zero columns when an event had fewer
actions) and `estimated_rewards` (n, K) a reward model's predictions (DM and DR only).

Each estimator computes one per-event vector (`round_rewards`); the estimate is its mean. The
Gaussian interval is value ± z·sd/√n with the sample sd (ddof=1) of that vector, except SNIPS,
a ratio, whose sd is the delta method's: that of w·(r − V̂)/mean(w).

Robust intervals, valid on small or skewed samples and clipped to the reward bounds (the value
of any policy lies within them):
- "bernstein" (IPS, DM, DR): the empirical Bernstein bound (Maurer & Pontil 2009, theorem 4),
  mean ± (sqrt(2·V·ln(2/δ)/n) + 7·R·ln(2/δ)/(3(n−1))) with δ = α/2 per side (δ = α for a
  one-sided bound), V the sample variance and R the range of the contributions: reward bounds
  times the largest observed weight (and the reward model's range for DM and DR). DM is not
  clipped: its interval is about the model's prediction, which need not lie in the reward bounds.
- "cressie-read" (SNIPS): the Cressie-Read empirical-likelihood interval of Karampatziakis,
  Mineiro & Ramdas (2021), as in VW's `estimators` package (`bandits/cressieread.py`), with the
  true weight bounds taken as [0, ∞). One change: where VW finds no candidate it falls back to
  rmin for both ends; this falls back to the uninformative end (rmin below, rmax above).
`reward_bounds` defaults to the observed min and max reward; pass the known bounds when there
are some (e.g. (0, 1)), the intervals are then valid without relying on the sample.

`Moments` and `MeanMoments` hold additive sums from which the Gaussian intervals are computed
again exactly, so per-bucket (e.g. per-hour) sums can be stored and added up later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

ROW_SUM_TOLERANCE = 1e-6  # how far a row of action_dist may sum from 1
_NORMAL = NormalDist()


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


# -- quantiles (no scipy) ---------------------------------------------------------------------


def normal_quantile(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def student_t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with `df` degrees of freedom: Newton on the exact CDF up to 1,000
    degrees of freedom, Cornish-Fisher's expansion (Abramowitz & Stegun 26.7.5) above."""
    if not 0 < p < 1 or not df > 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    z = _NORMAL.inv_cdf(p)
    if df > 1000:
        z2 = z * z
        g1 = (z2 + 1) * z / 4
        g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
        g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
        g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
        return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    low, high = 0.0, max(1.0, 2 * z)
    while _t_cdf(high, df) < p:
        low, high = high, 2 * high
    t = (low + high) / 2
    for _ in range(200):  # Newton, kept inside the bracket by bisection
        f = _t_cdf(t, df) - p
        if f == 0:
            return t
        low, high = (low, t) if f > 0 else (t, high)
        step = t - f / _t_pdf(t, df)
        step = step if low < step < high else (low + high) / 2
        if abs(step - t) <= 1e-15 * max(1.0, t):
            return step
        t = step
    return t


def _t_pdf(t: float, df: float) -> float:
    log = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log - (df + 1) / 2 * math.log1p(t * t / df))


def _t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for t ≥ 0: 1 − I_x(df/2, 1/2)/2 with x = df/(df + t²)."""
    x, y = df / (df + t * t), t * t / (df + t * t)
    return 1 - 0.5 * _betainc(df / 2, 0.5, x, y)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b), y = 1 − x (Lentz's continued fraction)."""
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return result


# -- intervals from a mean, a spread and a count ----------------------------------------------


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _gaussian(value: float, sd: float, n: int, alpha: float, one_sided: bool = False) -> Interval:
    if n < 2:
        return Interval(value, -math.inf, math.inf, "gaussian", alpha)
    half = normal_quantile(1 - (alpha if one_sided else alpha / 2)) * sd / math.sqrt(n)
    return Interval(value, value - half, math.inf if one_sided else value + half, "gaussian", alpha)


def _bernstein_half(variance: float, span: float, n: int, alpha: float, one_sided: bool) -> float:
    if n < 2:
        return math.inf
    log = math.log(2 / (alpha if one_sided else alpha / 2))
    return math.sqrt(2 * variance * log / n) + 7 * span * log / (3 * (n - 1))


def _sample_sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if x.size > 1 else math.nan


def _clip(interval: Interval, low: float, high: float) -> Interval:
    return Interval(
        interval.value,
        min(high, max(low, interval.lower)),
        max(low, min(high, interval.upper)),
        interval.method,
        interval.alpha,
    )


# -- validated inputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Logged:
    reward: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    action_dist: np.ndarray
    estimated_rewards: np.ndarray | None
    weights: np.ndarray

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    def logged_estimate(self) -> np.ndarray:
        """The reward model's prediction for the logged action of each event."""
        assert self.estimated_rewards is not None
        return self.estimated_rewards[np.arange(self.n), self.action]

    def model_estimate(self) -> np.ndarray:
        """Σ_a π(a|x)·q̂(x, a) per event."""
        assert self.estimated_rewards is not None
        return np.einsum("ij,ij->i", self.action_dist, self.estimated_rewards)

    def bounds(self, reward_bounds: tuple[float, float] | None) -> tuple[float, float]:
        if reward_bounds is None:
            return float(self.reward.min()), float(self.reward.max())
        low, high = (float(b) for b in reward_bounds)
        if not low <= high:
            raise ValueError(f"reward_bounds must be (low, high) with low ≤ high, got {low, high}")
        if self.reward.min() < low or self.reward.max() > high:
            raise ValueError(f"rewards outside reward_bounds {low, high}")
        return low, high


def _logged(reward, action, pscore, action_dist, estimated_rewards, *, model: bool) -> _Logged:
    reward = np.asarray(reward, dtype=float)
    action = np.asarray(action)
    pscore = np.asarray(pscore, dtype=float)
    action_dist = np.asarray(action_dist, dtype=float)
    if reward.ndim != 1:
        raise ValueError(f"reward must be a 1-d array, got shape {reward.shape}")
    n = reward.shape[0]
    if n == 0:
        raise ValueError("no events: an estimate needs at least one")
    if action.shape != (n,) or pscore.shape != (n,):
        raise ValueError(
            f"reward, action and pscore must have the same length, got {n}, "
            f"{action.shape} and {pscore.shape}"
        )
    if action_dist.ndim != 2 or action_dist.shape[0] != n or action_dist.shape[1] == 0:
        raise ValueError(f"action_dist must have shape ({n}, K), got {action_dist.shape}")
    if not np.issubdtype(action.dtype, np.integer):
        raise ValueError(f"action must hold integer indices, got dtype {action.dtype}")
    k = action_dist.shape[1]
    if action.min() < 0 or action.max() >= k:
        raise ValueError(f"action indices must be in [0, {k}), got {action.min()}..{action.max()}")
    if not np.all(np.isfinite(reward)):
        raise ValueError("reward must be finite")
    if not np.all((pscore > 0) & (pscore <= 1)):
        raise ValueError("pscore must be in (0, 1]: a logged action had a positive probability")
    if not np.all(action_dist >= 0):  # also refuses NaN
        raise ValueError("action_dist must hold probabilities ≥ 0")
    if np.abs(action_dist.sum(axis=1) - 1).max() > ROW_SUM_TOLERANCE:
        raise ValueError("each row of action_dist must sum to 1")
    if model:
        if estimated_rewards is None:
            raise ValueError("this estimator needs estimated_rewards (n, K)")
        estimated_rewards = np.asarray(estimated_rewards, dtype=float)
        if estimated_rewards.shape != action_dist.shape:
            raise ValueError(
                f"estimated_rewards must have the shape of action_dist {action_dist.shape}, "
                f"got {estimated_rewards.shape}"
            )
        if not np.all(np.isfinite(estimated_rewards)):
            raise ValueError("estimated_rewards must be finite")
    weights = action_dist[np.arange(n), action] / pscore
    return _Logged(reward, action, pscore, action_dist, estimated_rewards, weights)


def importance_weights(*, action, pscore, action_dist) -> np.ndarray:
    """π(a_i|x_i) / pscore_i of each logged action."""
    action_dist = np.asarray(action_dist, dtype=float)
    reward = np.zeros(np.asarray(action).shape[:1])
    return _logged(reward, action, pscore, action_dist, None, model=False).weights


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's (Σw)²/Σw²: how many unweighted events the weighted sample is worth."""
    weights = np.asarray(weights, dtype=float)
    squares = float(np.dot(weights, weights))
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0


def max_weight(weights: np.ndarray) -> float:
    weights = np.asarray(weights, dtype=float)
    return float(weights.max()) if weights.size else 0.0


# -- the estimators ---------------------------------------------------------------------------


class _Estimator:
    needs_model = False
    clipped = True  # robust intervals clipped to the reward bounds
    methods: tuple[str, ...] = ("gaussian", "bernstein")

    def round_rewards(
        self, *, reward, action, pscore, action_dist, estimated_rewards=None
    ) -> np.ndarray:
        """The per-event contributions whose mean is the estimate."""
        return self._round(self._data(reward, action, pscore, action_dist, estimated_rewards))

    def estimate_policy_value(
        self, *, reward, action, pscore, action_dist, estimated_rewards=None
    ) -> float:
        data = self._data(reward, action, pscore, action_dist, estimated_rewards)
        return float(self._round(data).mean())

    def estimate_interval(
        self,
        *,
        reward,
        action,
        pscore,
        action_dist,
        estimated_rewards=None,
        alpha: float = 0.05,
        method: str = "gaussian",
        reward_bounds: tuple[float, float] | None = None,
    ) -> Interval:
        _check_alpha(alpha)
        if method not in self.methods:
            raise ValueError(
                f"{type(self).__name__} intervals: method must be one of {self.methods}, "
                f"got {method!r}"
            )
        data = self._data(reward, action, pscore, action_dist, estimated_rewards)
        return self._interval(data, alpha, method, data.bounds(reward_bounds))

    def _data(self, reward, action, pscore, action_dist, estimated_rewards) -> _Logged:
        return _logged(
            reward, action, pscore, action_dist, estimated_rewards, model=self.needs_model
        )

    def _round(self, data: _Logged) -> np.ndarray:
        raise NotImplementedError

    def _span(self, data: _Logged, low: float, high: float) -> tuple[float, float]:
        """Bounds of one contribution, for Bernstein's range."""
        raise NotImplementedError

    def _interval(
        self, data: _Logged, alpha: float, method: str, bounds: tuple[float, float]
    ) -> Interval:
        x = self._round(data)
        value = float(x.mean())
        if method == "gaussian":
            return _gaussian(value, _sample_sd(x), data.n, alpha)
        lo, hi = self._span(data, *bounds)
        variance = float(np.var(x, ddof=1)) if data.n > 1 else math.nan
        half = _bernstein_half(variance, hi - lo, data.n, alpha, one_sided=False)
        interval = Interval(value, value - half, value + half, "bernstein", alpha)
        return _clip(interval, *bounds) if self.clipped else interval


class IPS(_Estimator):
    """Inverse propensity scoring: mean of w·r."""

    def _round(self, data: _Logged) -> np.ndarray:
        return data.weights * data.reward

    def _span(self, data: _Logged, low: float, high: float) -> tuple[float, float]:
        w = max_weight(data.weights)
        return min(0.0, w * low), max(0.0, w * high)


class SNIPS(_Estimator):
    """Self-normalized IPS: Σ w·r / Σ w (contributions w·r / mean(w))."""

    methods = ("gaussian", "cressie-read")

    def _round(self, data: _Logged) -> np.ndarray:
        mean_w = float(data.weights.mean())
        if mean_w <= 0:
            raise ValueError("SNIPS is undefined: the policy gives 0 to every logged action")
        return data.weights * data.reward / mean_w

    def _interval(
        self, data: _Logged, alpha: float, method: str, bounds: tuple[float, float]
    ) -> Interval:
        x = self._round(data)
        value = float(x.mean())
        if method == "gaussian":
            w = data.weights
            influence = w * (data.reward - value) / w.mean()  # the delta method; its mean is 0
            sd = math.sqrt(float(np.dot(influence, influence)) / (data.n - 1)) if data.n > 1 else 0
            return _gaussian(value, sd, data.n, alpha)
        lower, upper = cressie_read_interval(data.weights, data.reward, *bounds, alpha=alpha)
        return Interval(value, lower, upper, "cressie-read", alpha)


class DM(_Estimator):
    """Direct method: mean over events of Σ_a π(a|x)·q̂(x, a)."""

    needs_model = True
    clipped = False  # its interval is about the model's prediction (see the module docstring)

    def _round(self, data: _Logged) -> np.ndarray:
        return data.model_estimate()

    def _span(self, data: _Logged, low: float, high: float) -> tuple[float, float]:
        assert data.estimated_rewards is not None
        return float(data.estimated_rewards.min()), float(data.estimated_rewards.max())


class DR(_Estimator):
    """Doubly robust: the DM term + w·(r − q̂(x, a_i))."""

    needs_model = True

    def _round(self, data: _Logged) -> np.ndarray:
        return data.model_estimate() + data.weights * (data.reward - data.logged_estimate())

    def _span(self, data: _Logged, low: float, high: float) -> tuple[float, float]:
        assert data.estimated_rewards is not None
        q_low, q_high = float(data.estimated_rewards.min()), float(data.estimated_rewards.max())
        w = max_weight(data.weights)
        return q_low + w * min(0.0, low - q_high), q_high + w * max(0.0, high - q_low)


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
    _check_alpha(alpha)
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
        return _gaussian(value, _sample_sd(d), n, alpha, one_sided)
    if method != "bernstein":
        raise ValueError(f"method must be 'gaussian' or 'bernstein', got {method!r}")
    span = 2 * float(bound) if bound is not None else float(np.ptp(d))
    if bound is not None and np.abs(d).max() > bound:
        raise ValueError(f"a difference exceeds the given bound {bound}")
    half = _bernstein_half(
        float(np.var(d, ddof=1)) if n > 1 else math.nan, span, n, alpha, one_sided
    )
    return Interval(
        value, value - half, math.inf if one_sided else value + half, "bernstein", alpha
    )


# -- additive sufficient statistics -----------------------------------------------------------


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
        _check_alpha(alpha)
        if self.n == 0:
            raise ValueError("no events: an estimate needs at least one")
        value = self.sum_wr / self.n
        variance = max(0.0, self.sum_wr2 - self.n * value * value) / max(1, self.n - 1)
        return _gaussian(value, math.sqrt(variance), self.n, alpha)

    def snips(self, alpha: float = 0.05) -> Interval:
        _check_alpha(alpha)
        if self.n == 0:
            raise ValueError("no events: an estimate needs at least one")
        if self.sum_w <= 0:
            raise ValueError("SNIPS is undefined: the policy gives 0 to every logged action")
        value = self.sum_wr / self.sum_w
        # Σ (w·(r − V))² = Σ(wr)² − 2V·Σw²r + V²·Σw², then the delta method's / mean(w)².
        squares = self.sum_wr2 - 2 * value * self.sum_w2r + value * value * self.sum_w2
        mean_w = self.sum_w / self.n
        variance = max(0.0, squares) / max(1, self.n - 1) / (mean_w * mean_w)
        return _gaussian(value, math.sqrt(variance), self.n, alpha)

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
        _check_alpha(alpha)
        if self.n == 0:
            raise ValueError("no events: an estimate needs at least one")
        value = self.total / self.n
        variance = max(0.0, self.total_sq - self.n * value * value) / max(1, self.n - 1)
        return _gaussian(value, math.sqrt(variance), self.n, alpha, one_sided)
