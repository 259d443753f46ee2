"""The promotion gate: a challenger replaces the champion only on evidence that it is better.

The evidence is progressive validation on the events both policies scored: for each final event
the service records the logging probability p_i of the logged action, each policy's probability
of that action (πC_i for the challenger, πH_i for the champion, recorded before the policy learned
the event) and the reward r_i. The per-event difference of their IPS contributions,
d_i = r_i·(πC_i − πH_i)/p_i, has mean V(challenger) − V(champion) without bias; both estimates
use the same events, so the noise they share cancels in d.

The bound. The lower bound of the lift is Gaussian, mean(d) − z·sd(d)/√n, with z for 1 − α/2
(1.96 for α = 0.05): the lower end of the two-sided (1 − α) interval. That is a valid one-sided
(1 − α) bound, deliberately conservative; `python3 -m bench.gate` (1,000 replications per row,
two seeds) decided it:
- the plain one-sided bound (z = 1.645) promotes an equal challenger in 5% of cases by
  construction: measured 3.2% and 5.2% at 50,000 events; and when d is skewed to the left (a
  challenger that explores less than the champion: d is small and positive mostly, −r/p
  sometimes) the normal approximation errs on the wrong side: 4.9–6.0% at 10,000 events.
- the empirical Bernstein bound (alone, or the lower of it and the Gaussian one) is valid without
  the normal approximation but far too wide: in the +10% scenario it promoted 41–44% of the time.
- this bound: equal challengers promoted in 1.0–3.0% (left-skewed: 2.3–3.8%), a 10%-better one
  in 90.9–93.4% at 50,000 events (normal theory: 91.6%), a 10%-worse one never.
`reward_bounds` is only checked: the Gaussian bound does not use it.

Defaults.
- `min_events` = 10,000. Personalizer recommends at least 50,000 events for an offline
  evaluation; here the bound already accounts for the sample size, so the minimum is only a floor
  under the normal approximation (its error shrinks as 1/√n; at 10,000 events the measured levels
  above hold) that a service with ten thousand events a day reaches in a day.
- `min_ess` = 1,000. Kish's effective sample size (Σw)²/Σw² of the challenger's weights
  w = πC/p: the number of events its estimate is really worth. A challenger that prefers actions
  the champion rarely explores has a few events with large weights; below about a thousand of
  them the sample variance is itself too noisy for the Gaussian bound (an action explored with
  probability 0.001 appears 10 times in 10,000 events). With the default epsilon 0.2 over 5
  actions, a challenger that explores the same way but favours (0.84) an action the champion
  explores at 0.04 has an ESS of about n/18: it meets the rule after about 18,000 events (the
  bench's challenger, which does so on 70% of the traffic, after 12,700).
- `min_lift` = 0: any lift whose lower bound is positive; `alpha` = 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.estimators import effective_sample_size, max_weight
from policies.intervals import paired_difference

DEFAULT_MIN_EVENTS = 10_000
DEFAULT_MIN_ESS = 1_000.0


@dataclass(frozen=True)
class GateRules:
    min_events: int = DEFAULT_MIN_EVENTS  # final events both policies scored
    min_lift: float = 0.0  # absolute lift in expected reward the lower bound must exceed
    min_ess: float = DEFAULT_MIN_ESS  # effective sample size of the challenger's weights
    alpha: float = 0.05  # one-sided 95%

    def __post_init__(self) -> None:
        if self.min_events < 0 or self.min_ess < 0:
            raise ValueError("min_events and min_ess must be ≥ 0")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not math.isfinite(self.min_lift):
            raise ValueError("min_lift must be finite")

    def to_json(self) -> dict[str, Any]:
        return {
            "minEvents": self.min_events,
            "minLift": self.min_lift,
            "minEss": self.min_ess,
            "alpha": self.alpha,
        }


@dataclass(frozen=True)
class Evidence:
    events: int
    challenger_value: float  # IPS estimate
    champion_value: float  # IPS estimate
    difference: float  # mean paired difference challenger − champion
    lower_bound: float  # one-sided (1 − alpha) lower bound of the difference
    interval_method: str
    effective_sample_size: float
    max_weight: float
    alpha: float = 0.05  # the level `lower_bound` was computed at

    def to_json(self) -> dict[str, Any]:
        """camelCase; a non-finite number (the bound of a single event) is null."""
        return {
            "events": self.events,
            "challengerValue": _number(self.challenger_value),
            "championValue": _number(self.champion_value),
            "difference": _number(self.difference),
            "lowerBound": _number(self.lower_bound),
            "intervalMethod": self.interval_method,
            "effectiveSampleSize": _number(self.effective_sample_size),
            "maxWeight": _number(self.max_weight),
        }


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: list[str]  # one per failed condition, or the reason it passes
    evidence: Evidence
    rules: GateRules | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "promote": self.promote,
            "reasons": list(self.reasons),
            "evidence": self.evidence.to_json(),
        }
        if self.rules is not None:
            document["rules"] = self.rules.to_json()
        return document


def _number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _vector(name: str, x: Any) -> np.ndarray:
    array = np.asarray(x, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def evidence(
    *,
    reward,
    pscore,
    challenger_prob,
    champion_prob,
    alpha: float = 0.05,
    reward_bounds: tuple[float, float] | None = None,
) -> Evidence:
    """The evidence of events both policies scored: (n,) rewards, logging probabilities of the
    logged actions, and each policy's probability of the logged action. `reward_bounds`, when
    given, is checked (the Gaussian bound does not need it)."""
    reward = _vector("reward", reward)
    pscore = _vector("pscore", pscore)
    challenger = _vector("challenger_prob", challenger_prob)
    champion = _vector("champion_prob", champion_prob)
    n = reward.size
    if not pscore.size == challenger.size == champion.size == n:
        raise ValueError(
            "reward, pscore, challenger_prob and champion_prob must have one length, got "
            f"{n}, {pscore.size}, {challenger.size}, {champion.size}"
        )
    if n == 0:
        raise ValueError("no events: the gate needs events both policies scored")
    if not np.all((pscore > 0) & (pscore <= 1)):
        raise ValueError("pscore must be in (0, 1]")
    for name, p in (("challenger_prob", challenger), ("champion_prob", champion)):
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError(f"{name} must be in [0, 1]")
    if reward_bounds is not None and (
        reward.min() < reward_bounds[0] or reward.max() > reward_bounds[1]
    ):
        raise ValueError(f"rewards outside reward_bounds {tuple(reward_bounds)}")
    weights = challenger / pscore
    first, second = weights * reward, champion / pscore * reward
    bound = paired_difference(first, second, alpha=alpha / 2, one_sided=True)
    return Evidence(
        events=n,
        challenger_value=float(first.mean()),
        champion_value=float(second.mean()),
        difference=bound.value,
        lower_bound=bound.lower,
        interval_method=f"gaussian, lower end of the two-sided {100 * (1 - alpha):g}% interval",
        effective_sample_size=effective_sample_size(weights),
        max_weight=max_weight(weights),
        alpha=alpha,
    )


def decide(evidence: Evidence, rules: GateRules) -> Verdict:
    """Promote when every rule holds; the reasons name each rule that failed."""
    if evidence.alpha != rules.alpha:
        raise ValueError(
            f"the evidence's bound is at alpha={evidence.alpha}, the rules ask {rules.alpha}"
        )
    confidence = f"{100 * (1 - rules.alpha):g}%"
    reasons = []
    if evidence.events < rules.min_events:
        reasons.append(f"only {evidence.events} events; at least {rules.min_events} are required")
    if evidence.effective_sample_size < rules.min_ess:
        reasons.append(
            f"the challenger's effective sample size is {evidence.effective_sample_size:.0f}; "
            f"at least {rules.min_ess:g} is required (its importance weights are too uneven, "
            f"the largest is {evidence.max_weight:.3g})"
        )
    if not evidence.lower_bound > rules.min_lift:
        reasons.append(
            f"the {confidence} lower bound of the lift, {evidence.lower_bound:+.4g}, does not "
            f"exceed the minimum lift {rules.min_lift:g} (estimated lift "
            f"{evidence.difference:+.4g}: challenger {evidence.challenger_value:.4g}, "
            f"champion {evidence.champion_value:.4g})"
        )
    if reasons:
        return Verdict(False, reasons, evidence, rules)
    reason = (
        f"the challenger is better: estimated lift {evidence.difference:+.4g} (challenger "
        f"{evidence.challenger_value:.4g}, champion {evidence.champion_value:.4g}), {confidence} "
        f"lower bound {evidence.lower_bound:+.4g} > {rules.min_lift:g}, over {evidence.events} "
        f"events (effective sample size {evidence.effective_sample_size:.0f})"
    )
    return Verdict(True, [reason], evidence, rules)
