"""The promotion gate: the evidence equals a plain-loop computation; each rule refuses with its
reason; a clear win is promoted."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pytest

from policies.gate import Evidence, GateRules, Verdict, decide, evidence

TOL = {"rel": 1e-9, "abs": 1e-9}
PASSING = Evidence(
    events=50_000,
    challenger_value=0.33,
    champion_value=0.30,
    difference=0.03,
    lower_bound=0.01,
    interval_method="gaussian",
    effective_sample_size=4_000.0,
    max_weight=21.0,
)


def scored(seed: int, n: int, lift: float = 0.0) -> dict[str, np.ndarray]:
    """Events logged epsilon-greedy (0.2, 5 actions) by the champion; the challenger is greedy on
    another action; rewards Bernoulli, the challenger's action `lift` better."""
    rng = np.random.default_rng(seed)
    greedy = rng.integers(0, 5, n)
    favourite = (greedy + 1 + rng.integers(0, 4, n)) % 5
    logging = np.full((n, 5), 0.04)
    logging[np.arange(n), greedy] += 0.8
    challenger = np.full((n, 5), 0.04)
    challenger[np.arange(n), favourite] += 0.8
    action = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)[:, :-1]).sum(axis=1)
    means = np.where(action == favourite, 0.3 + lift, 0.3)
    rows = np.arange(n)
    return {
        "reward": (rng.random(n) < means).astype(float),
        "pscore": logging[rows, action],
        "challenger_prob": challenger[rows, action],
        "champion_prob": logging[rows, action],
    }


@pytest.mark.parametrize(("seed", "alpha"), [(0, 0.05), (1, 0.1), (2, 0.05)])
def test_evidence_equals_loops(seed: int, alpha: float) -> None:
    d = scored(seed, 500, lift=0.1)
    rng = np.random.default_rng(seed)
    d["champion_prob"] = np.clip(d["champion_prob"] + rng.uniform(-0.03, 0.03, 500), 0, 1)
    d["reward"] = d["reward"] * rng.uniform(0.5, 2, 500)  # not only 0/1
    n = len(d["reward"])
    w_c, first, second, diff = [], [], [], []
    for i in range(n):
        r, p = float(d["reward"][i]), float(d["pscore"][i])
        c, h = float(d["challenger_prob"][i]), float(d["champion_prob"][i])
        w_c.append(c / p)
        first.append(r * c / p)
        second.append(r * h / p)
        diff.append(r * (c - h) / p)
    mean = sum(diff) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in diff) / (n - 1))
    found = evidence(**d, alpha=alpha)
    assert found.events == n
    assert found.challenger_value == pytest.approx(sum(first) / n, **TOL)
    assert found.champion_value == pytest.approx(sum(second) / n, **TOL)
    assert found.difference == pytest.approx(mean, **TOL)
    z = NormalDist().inv_cdf(1 - alpha / 2)  # the lower end of the two-sided interval
    assert found.lower_bound == pytest.approx(mean - z * sd / math.sqrt(n), **TOL)
    assert found.effective_sample_size == pytest.approx(
        sum(w_c) ** 2 / sum(w * w for w in w_c), **TOL
    )
    assert found.max_weight == max(w_c)
    assert found.alpha == alpha
    assert found.interval_method.startswith("gaussian")


def test_too_few_events_are_refused_with_the_reason() -> None:
    verdict = decide(replace(PASSING, events=812), GateRules(min_events=10_000))
    assert not verdict.promote
    assert verdict.reasons == ["only 812 events; at least 10000 are required"]


def test_a_small_effective_sample_size_is_refused() -> None:
    verdict = decide(replace(PASSING, effective_sample_size=420.4), GateRules(min_ess=1000))
    assert not verdict.promote
    assert len(verdict.reasons) == 1
    assert "effective sample size is 420" in verdict.reasons[0]
    assert "at least 1000" in verdict.reasons[0]


@pytest.mark.parametrize(("lower_bound", "min_lift"), [(-0.01, 0.0), (0.0, 0.0), (0.01, 0.02)])
def test_a_lower_bound_not_above_the_minimum_lift_is_refused(lower_bound, min_lift) -> None:
    verdict = decide(replace(PASSING, lower_bound=lower_bound), GateRules(min_lift=min_lift))
    assert not verdict.promote
    assert len(verdict.reasons) == 1
    assert "lower bound" in verdict.reasons[0] and "does not exceed" in verdict.reasons[0]


def test_every_failed_rule_has_its_reason() -> None:
    weak = replace(PASSING, events=100, effective_sample_size=10.0, lower_bound=-math.inf)
    verdict = decide(weak, GateRules())
    assert not verdict.promote
    assert len(verdict.reasons) == 3
    json.dumps(verdict.to_json(), allow_nan=False)


def test_a_clear_win_is_promoted() -> None:
    found = evidence(**scored(7, 30_000, lift=0.15))
    assert found.challenger_value > found.champion_value
    verdict = decide(found, GateRules())
    assert verdict.promote, verdict.reasons
    assert len(verdict.reasons) == 1 and "challenger is better" in verdict.reasons[0]
    assert verdict.rules == GateRules()


def test_an_equal_challenger_is_not_promoted() -> None:
    found = evidence(**scored(0, 30_000, lift=0.0))  # a seeded draw: 2.5% would promote
    verdict = decide(found, GateRules())
    assert not verdict.promote
    assert verdict.reasons == [r for r in verdict.reasons if "does not exceed" in r]


def test_to_json() -> None:
    verdict = decide(PASSING, GateRules())
    document = verdict.to_json()
    assert set(document) == {"promote", "reasons", "evidence", "rules"}
    assert document["promote"] is True
    assert list(document["evidence"]) == [
        "events",
        "challengerValue",
        "championValue",
        "difference",
        "lowerBound",
        "intervalMethod",
        "effectiveSampleSize",
        "maxWeight",
    ]
    assert document["evidence"]["lowerBound"] == 0.01
    assert document["rules"] == {
        "minEvents": 10_000,
        "minLift": 0.0,
        "minEss": 1000.0,
        "alpha": 0.05,
    }
    assert "rules" not in Verdict(False, ["no"], PASSING).to_json()
    single = evidence(reward=[1.0], pscore=[0.5], challenger_prob=[1.0], champion_prob=[0.5])
    assert single.to_json()["lowerBound"] is None
    json.dumps(decide(single, GateRules()).to_json(), allow_nan=False)


def test_bad_inputs_are_refused() -> None:
    d = scored(3, 20)
    with pytest.raises(ValueError, match="one length"):
        evidence(**dict(d, pscore=d["pscore"][:-1]))
    with pytest.raises(ValueError, match="no events"):
        evidence(reward=[], pscore=[], challenger_prob=[], champion_prob=[])
    with pytest.raises(ValueError, match="pscore"):
        evidence(**dict(d, pscore=np.zeros(20)))
    with pytest.raises(ValueError, match="challenger_prob"):
        evidence(**dict(d, challenger_prob=d["challenger_prob"] + 1))
    with pytest.raises(ValueError, match="reward_bounds"):
        evidence(**dict(d, reward=np.ones(20)), reward_bounds=(0.0, 0.5))
    with pytest.raises(ValueError, match="alpha"):
        decide(evidence(**d, alpha=0.1), GateRules())
    with pytest.raises(ValueError, match="alpha"):
        GateRules(alpha=0)
