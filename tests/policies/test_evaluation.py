"""Replay (progressive validation, the compact two-action form) and the report data."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from policies.arguments import DEFAULT_ARGUMENTS
from policies.estimators import DM, DR, IPS, SNIPS
from policies.evaluation_report import choose_interval, regroup, report
from policies.features import Action
from policies.replay import LoggedEvent, PolicySpec, Replay, ReplayResult, RewardModel
from policies.vw import Policy, example_text

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ACTIONS = [Action(f"a{i}", [{"kind": f"k{i}"}]) for i in range(4)]
FAST = "--cb_explore_adf --epsilon 0.1 -l 0.5 -q ::"
SPECS = [
    PolicySpec("Online", "Online", DEFAULT_ARGUMENTS),
    PolicySpec("Baseline1", "Baseline", None),
    PolicySpec("BaselineRand", "Random", None),
    PolicySpec("fast", "Custom", FAST),
]
META = {"id": "e1", "name": "test", "startTime": "2023-11-14T00:00:00Z"}


def stream(n: int, *, seed: int = 0, varying: bool = False, step: float = 37.0):
    """Segment s pays on action s % K (90% vs 10%); logging favours action 0 (0.4)."""
    rng = random.Random(seed)
    events = []
    for seq in range(n):
        segment = rng.randrange(3)
        k = rng.randrange(2, 5) if varying else 4
        example = example_text([{"user": {"segment": f"s{segment}"}}], ACTIONS[:k])
        probabilities = [0.4] + [0.6 / (k - 1)] * (k - 1)
        action = rng.choices(range(k), probabilities)[0]
        paying = 0.9 if action == segment % k else 0.1
        reward = 1.0 if rng.random() < paying else 0.0
        events.append(
            LoggedEvent(seq, T0 + seq * step, example, action, probabilities[action], reward)
        )
    return events


def replayed(events, specs=SPECS) -> ReplayResult:
    replay = Replay(specs)
    for event in events:
        replay.add(event)
    return replay.result()


@pytest.fixture(scope="module")
def events():
    return stream(400, varying=True)


@pytest.fixture(scope="module")
def result(events):
    return replayed(events)


# ---------------------------------------------------------------- replay


def full_arrays(events, spec: PolicySpec, width: int):
    """The (n, K) action_dist and estimated_rewards, padded with zeros to `width` actions."""
    model = RewardModel()
    policy = None if spec.arguments is None else Policy(spec.arguments)
    dist, rewards = np.zeros((len(events), width)), np.zeros((len(events), width))
    for i, e in enumerate(events):
        q = model.predict_then_learn(e.example, e.action, e.reward, e.probability)
        k = len(q)
        if spec.source == "Baseline":
            pmf = [1.0] + [0.0] * (k - 1)
        elif spec.source == "Random":
            pmf = [1 / k] * k
        else:
            pmf = policy.score_and_learn(e.example, e.action, -e.reward, e.probability)
        dist[i, :k], rewards[i, :k] = pmf, q
    return {
        "reward": np.array([e.reward for e in events]),
        "action": np.array([e.action for e in events]),
        "pscore": np.array([e.probability for e in events]),
        "action_dist": dist,
        "estimated_rewards": rewards,
    }


@pytest.mark.parametrize("index", range(len(SPECS)), ids=[s.name for s in SPECS])
def test_compact_form_equals_the_full_form(events, result, index):
    full = full_arrays(events, SPECS[index], width=4)
    compact = result.feedback(index)
    assert compact["action_dist"].shape == (len(events), 2)
    rows = np.arange(len(events))
    assert np.array_equal(result.p_logged[index], full["action_dist"][rows, full["action"]])
    for estimator in (IPS(), SNIPS(), DM(), DR()):
        assert np.allclose(
            estimator.round_rewards(**compact), estimator.round_rewards(**full), rtol=1e-9
        )
        # Bernstein's range for DM and DR comes from the min/max of q̂ (not kept); unused
        methods = estimator.methods if isinstance(estimator, IPS | SNIPS) else ("gaussian",)
        for method in methods:
            a = estimator.estimate_interval(**compact, method=method)
            b = estimator.estimate_interval(**full, method=method)
            assert a.value == pytest.approx(b.value, rel=1e-9, abs=1e-12)
            assert a.lower == pytest.approx(b.lower, rel=1e-9, abs=1e-12)
            assert a.upper == pytest.approx(b.upper, rel=1e-9, abs=1e-12)


def test_pmf_is_recorded_before_learning_the_event():
    """Action 2 always pays: the first event that logs it is scored by the blank policy."""
    events = []
    for seq in range(40):
        action = (seq + 2) % 4  # the first event logs action 2
        example = example_text([{"user": {"segment": "s0"}}], ACTIONS)
        events.append(LoggedEvent(seq, T0 + seq, example, action, 0.25, float(action == 2)))
    result = replayed(events, [PolicySpec("fast", "Custom", FAST)])
    assert result.p_logged[0][0] == pytest.approx(0.25)  # blank: uniform
    assert result.p_logged[0][4] == pytest.approx(0.925)  # learnt: 1 − ε + ε/K
    assert result.p_logged[0][1] == pytest.approx(0.025)
    by_hand, policy = [], Policy(FAST)
    for e in events:
        by_hand.append(policy.pmf_of(e.example)[e.action])
        policy.learn_from(e.example, e.action, -e.reward, e.probability)
    assert result.p_logged[0].tolist() == by_hand


def test_baseline_and_random_against_a_direct_computation(events, result):
    out = report(result, meta=META)
    for name, weight in [
        ("Baseline1", lambda e, k: (e.action == 0) / e.probability),
        ("BaselineRand", lambda e, k: 1 / (k * e.probability)),
    ]:
        total = next(p for p in out["policies"] if p["name"] == name)["total"]
        ks = [len(json.loads(e.example)["_multi"]) for e in events]
        w = [weight(e, k) for e, k in zip(events, ks, strict=True)]
        numerator = sum(wi * e.reward for wi, e in zip(w, events, strict=True))
        squares = sum((wi * e.reward) ** 2 for wi, e in zip(w, events, strict=True))
        n = len(events)
        average = numerator / n
        assert total["events"] == n
        assert total["ips"]["value"] == pytest.approx(average)
        assert total["snips"]["value"] == pytest.approx(numerator / sum(w))
        assert total["ipsEstimatorNumerator"] == pytest.approx(numerator)
        assert total["ipsEstimatorDenominator"] == n
        assert total["snipsEstimatorDenominator"] == pytest.approx(sum(w))
        assert total["sumOfSquares"] == pytest.approx(squares)
        assert total["averageReward"] == pytest.approx(average)
        spread = 1.96 * ((squares / n - average**2) / (n - 1)) ** 0.5
        assert total["confidenceInterval"] == pytest.approx(spread)
        assert total["nonZeroProbability"] == sum(wi > 0 for wi in w)
        assert total["maxWeight"] == pytest.approx(max(w))


def test_a_policy_that_learns_the_signal_beats_random():
    out = report(replayed(stream(1500, seed=3)), meta=META)
    totals = {p["name"]: p["total"] for p in out["policies"]}
    assert totals["fast"]["ips"]["value"] > totals["BaselineRand"]["ips"]["value"] + 0.2
    assert totals["fast"]["dr"]["value"] > totals["BaselineRand"]["dr"]["value"] + 0.2
    assert totals["fast"]["difference"]["lowerBound95"] > 0  # better than Online (slow -l)
    assert out["optimalPolicy"] == "fast"


def test_replay_refuses_an_action_outside_the_example():
    event = stream(1)[0]
    bad = LoggedEvent(0, T0, event.example, 7, 0.5, 1.0)
    with pytest.raises(ValueError):
        Replay(SPECS).add(bad)


# ---------------------------------------------------------------- report


def test_report_schema_and_buckets(events, result):
    out = report(result, meta=META)
    json.dumps(out, allow_nan=False)
    assert set(out) == {
        "evaluation",
        "events",
        "intervalMinutes",
        "bucketStarts",
        "bucketEvents",
        "policies",
        "optimalPolicy",
    }
    assert out["evaluation"] == META
    assert out["events"] == len(events)
    assert out["intervalMinutes"] == 5  # 400 × 37 s: 50 five-minute buckets
    assert out["bucketStarts"] == sorted(out["bucketStarts"])
    assert all(s.endswith(":00Z") and int(s[14:16]) % 5 == 0 for s in out["bucketStarts"])
    assert sum(out["bucketEvents"]) == len(events)
    assert [p["name"] for p in out["policies"]] == [s.name for s in SPECS]
    for policy in out["policies"]:
        total, series = policy["total"], policy["timeseries"]
        assert set(total) >= {
            "events", "nonZeroProbability", "ips", "ipsRobust", "snips", "snipsRobust", "dm",
            "dr", "effectiveSampleSize", "maxWeight", "difference", "ipsEstimatorNumerator",
            "ipsEstimatorDenominator", "snipsEstimatorDenominator", "sumOfSquares",
            "confidenceInterval", "averageReward",
        }  # fmt: skip
        for key in ("ips", "ipsRobust", "snips", "snipsRobust", "dr"):
            assert set(total[key]) == {"value", "lower", "upper", "method", "confidence"}
        assert total["ipsRobust"]["method"] == "bernstein"
        assert total["snipsRobust"]["method"] == "cressie-read"
        assert len(series) == len(out["bucketStarts"])
        assert [e["events"] for e in series] == out["bucketEvents"]
        for key in ("ipsEstimatorNumerator", "snipsEstimatorDenominator", "sumOfSquares"):
            assert sum(e[key] for e in series) == pytest.approx(total[key])
        assert sum(e["nonZeroProbability"] for e in series) == total["nonZeroProbability"]
        for entry in series:
            assert set(entry) >= {
                "events", "ips", "lower", "upper", "snips", "effectiveSampleSize", "difference",
                "differenceLower", "differenceUpper", "ipsEstimatorNumerator",
                "ipsEstimatorDenominator", "snipsEstimatorDenominator", "sumOfSquares",
                "confidenceInterval", "averageReward", "nonZeroProbability", "sums",
            }  # fmt: skip
        if policy["name"] == "Online":
            assert total["difference"] is None
            assert all(e["difference"] is None for e in series)
        else:
            difference = total["difference"]
            assert difference["lower"] < difference["lowerBound95"] < difference["value"]
            fixed = policy["source"] in ("Baseline", "Random")
            assert policy["arguments"] == (None if fixed else FAST)
    assert out["policies"][0]["arguments"] == DEFAULT_ARGUMENTS


def test_report_of_one_event_has_no_nan():
    out = report(replayed(stream(1)), meta=META)
    json.dumps(out, allow_nan=False)
    assert out["policies"][0]["total"]["ips"]["lower"] is None  # too few events for an interval


def test_a_policy_that_never_plays_the_logged_action_has_null_snips():
    events = [e for e in stream(60) if e.action != 0]  # Baseline gives them all probability 0
    total = report(replayed(events), meta=META)["policies"][1]["total"]
    assert total["nonZeroProbability"] == 0
    assert total["ips"]["value"] == 0
    assert total["snips"]["value"] is None
    assert total["snipsRobust"]["value"] is None
    assert total["effectiveSampleSize"] == 0


def test_interval_is_the_smallest_giving_at_most_200_buckets():
    assert choose_interval(np.array([T0, T0 + 3600])) == 5
    assert choose_interval(np.array([T0, T0 + 2 * 86400])) == 60
    assert choose_interval(np.array([T0, T0 + 30 * 86400])) == 360
    assert choose_interval(np.array([T0, T0 + 90 * 86400])) == 720
    assert choose_interval(np.array([T0, T0 + 365 * 86400])) == 1440


def test_regroup_rolling_equals_a_report_at_that_interval(result):
    five = report(result, meta=META, interval_minutes=5)
    hourly = report(result, meta=META, interval_minutes=60)
    regrouped = regroup(five, 60, "Rolling")
    json.dumps(regrouped, allow_nan=False)
    assert regrouped["bucketStarts"] == hourly["bucketStarts"]
    assert regrouped["bucketEvents"] == hourly["bucketEvents"]
    for mine, theirs in zip(regrouped["policies"], hourly["policies"], strict=True):
        assert mine["total"] == theirs["total"]
        for a, b in zip(mine["timeseries"], theirs["timeseries"], strict=True):
            for key, value in b.items():
                if key != "sums" and value is not None:
                    assert a[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_regroup_expanding_is_cumulative(result):
    out = report(result, meta=META, interval_minutes=5)
    expanding = regroup(out, 60, "Expanding")
    assert expanding["bucketEvents"] == sorted(expanding["bucketEvents"])
    assert expanding["bucketEvents"][-1] == result.events
    for policy in expanding["policies"]:
        last = policy["timeseries"][-1]
        assert last["events"] == result.events
        assert last["ips"] == pytest.approx(policy["total"]["ips"]["value"])
        assert last["lower"] == pytest.approx(policy["total"]["ips"]["lower"])
        if policy["total"]["difference"] is not None:
            assert last["difference"] == pytest.approx(policy["total"]["difference"]["value"])
    with pytest.raises(ValueError):
        regroup(out, 7, "Rolling")
    with pytest.raises(ValueError):
        regroup(out, 60, "Sliding")


def test_replay_takes_no_events_after_its_result():
    replay = Replay(SPECS)
    first, second = stream(2)
    replay.add(first)
    assert replay.result().events == 1
    with pytest.raises(RuntimeError):
        replay.add(second)
