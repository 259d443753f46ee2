"""Off-policy estimators of a policy's expected reward from logged bandit events, with intervals.

Arrays follow Open Bandit Pipeline's single-slot convention: `reward` (n,), `action` (n,) the
logged action's index, `pscore` (n,) the logging probability of that action, `action_dist`
(n, K) the evaluated policy's probabilities (rows may end in zero columns when an event had fewer
actions) and `estimated_rewards` (n, K) a reward model's predictions (DM and DR only).

Each estimator computes one per-event vector (`round_rewards`); the estimate is its mean. The
Gaussian interval is value ± z·sd/√n with the sample sd (ddof=1) of that vector, except SNIPS,
a ratio, whose sd is the delta method's: that of w·(r − V̂)/mean(w).

Robust intervals, valid on small or skewed samples and clipped to the reward bounds (the value
of any policy lies within them), computed by `policies.intervals`:
- "bernstein" (IPS, DM, DR): the empirical Bernstein bound, with R the range of the
  contributions: reward bounds times the largest observed weight (and the reward model's range for
  DM and DR). DM is not clipped: its interval is about the model's prediction, which need not lie
  in the reward bounds.
- "cressie-read" (SNIPS): the Cressie-Read empirical-likelihood interval.
`reward_bounds` defaults to the observed min and max reward; pass the known bounds when there
are some (e.g. (0, 1)), the intervals are then valid without relying on the sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policies.intervals import (
    Interval,
    bernstein_half_width,
    check_alpha,
    clip_interval,
    cressie_read_interval,
    gaussian_interval,
    sample_sd,
)

ROW_SUM_TOLERANCE = 1e-6  # how far a row of action_dist may sum from 1


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
        check_alpha(alpha)
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
            return gaussian_interval(value, sample_sd(x), data.n, alpha)
        lo, hi = self._span(data, *bounds)
        variance = float(np.var(x, ddof=1)) if data.n > 1 else math.nan
        half = bernstein_half_width(variance, hi - lo, data.n, alpha, one_sided=False)
        interval = Interval(value, value - half, value + half, "bernstein", alpha)
        return clip_interval(interval, *bounds) if self.clipped else interval


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
            return gaussian_interval(value, sd, data.n, alpha)
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
