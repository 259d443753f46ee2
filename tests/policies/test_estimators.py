"""Off-policy estimators: equal to plain-loop computations, and right on a population with a known
value (unbiased, intervals cover)."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

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
from policies.quantiles import student_t_quantile

TOL = {"rel": 1e-9, "abs": 1e-9}
CASES = [(seed, k) for seed, k in zip(range(8), (2, 3, 5, 5, 8, 4, 6, 5), strict=True)]


def logged(seed: int, k: int, n: int = 300) -> dict:
    """Random events: some with fewer than k actions (trailing zero columns), rewards in [−1, 2]
    for even seeds and in {0, 1} for odd ones."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, k + 1, size=n)
    sizes[: n // 2] = k
    action_dist = np.zeros((n, k))
    estimated = np.zeros((n, k))
    action = np.zeros(n, dtype=int)
    pscore = np.zeros(n)
    for i, size in enumerate(sizes):
        target = rng.dirichlet(np.full(size, 0.5))
        logging = rng.dirichlet(np.ones(size)) * 0.9 + 0.1 / size
        action_dist[i, :size] = target
        estimated[i, :size] = rng.uniform(-0.5, 1.5, size)
        action[i] = rng.choice(size, p=logging)
        pscore[i] = logging[action[i]]
    reward = (rng.random(n) < 0.4).astype(float) if seed % 2 else rng.uniform(-1, 2, n)
    return {
        "reward": reward,
        "action": action,
        "pscore": pscore,
        "action_dist": action_dist,
        "estimated_rewards": estimated,
    }


# -- independent computations with loops ------------------------------------------------------


def loop_weights(d: dict) -> list[float]:
    return [
        float(d["action_dist"][i][d["action"][i]]) / float(d["pscore"][i])
        for i in range(len(d["reward"]))
    ]


def loop_mean(x: list[float]) -> float:
    total = 0.0
    for v in x:
        total += v
    return total / len(x)


def loop_sd(x: list[float]) -> float:
    m = loop_mean(x)
    total = 0.0
    for v in x:
        total += (v - m) ** 2
    return math.sqrt(total / (len(x) - 1))


def loop_contributions(name: str, d: dict) -> list[float]:
    w, r = loop_weights(d), [float(v) for v in d["reward"]]
    n = len(r)
    if name == "IPS":
        return [w[i] * r[i] for i in range(n)]
    if name == "SNIPS":
        mean_w = loop_mean(w)
        return [w[i] * r[i] / mean_w for i in range(n)]
    out = []
    for i in range(n):
        dm = 0.0
        for a in range(len(d["action_dist"][i])):
            dm += float(d["action_dist"][i][a]) * float(d["estimated_rewards"][i][a])
        if name == "DR":
            dm += w[i] * (r[i] - float(d["estimated_rewards"][i][d["action"][i]]))
        out.append(dm)
    return out


def loop_bernstein_range(name: str, d: dict, low: float, high: float) -> float:
    w_max = max(loop_weights(d))
    if name == "IPS":
        return max(0.0, w_max * high) - min(0.0, w_max * low)
    q = [float(v) for row in d["estimated_rewards"] for v in row]
    q_low, q_high = min(q), max(q)
    if name == "DM":
        return q_high - q_low
    return (q_high + w_max * max(0.0, high - q_low)) - (q_low + w_max * min(0.0, low - q_high))


def loop_cressie_read(w, r, rmin, rmax, alpha, atol=1e-9):
    """VW's `estimators.bandits.cressieread.IntervalImpl.get`, with wmin = 0 and wmax = ∞, and
    the uninformative end (rmin below, rmax above) where it finds no candidate."""
    n = sumw = sumwsq = sumwr = sumwsqr = sumwsqrsq = 0.0
    for wi, ri in zip(w, r, strict=True):
        n += 1
        sumw += wi
        sumwsq += wi**2
        sumwr += wi * ri
        sumwsqr += wi**2 * ri
        sumwsqrsq += wi**2 * ri**2
    wmin, wmax = 0.0, math.inf
    uncwfake = wmax if sumw < n else wmin
    if uncwfake == math.inf:
        uncgstar = 1 + 1 / n
    else:
        unca = (uncwfake + sumw) / (1 + n)
        uncb = (uncwfake**2 + sumwsq) / (1 + n)
        uncgstar = (1 + n) * (unca - 1) ** 2 / (uncb - unca * unca)
    delta = student_t_quantile(1 - alpha / 2, n) ** 2
    phi = (-uncgstar - delta) / (2 * (1 + n))
    bounds = []
    for rr, sign in ((rmin, 1), (rmax, -1)):
        candidates = []
        for wfake in (wmin, wmax):
            if wfake == math.inf:
                x = sign * (rr + (sumwr - sumw * rr) / n)
                y = (rr * sumw - sumwr) ** 2 / (n * (1 + n)) - (
                    rr**2 * sumwsq - 2 * rr * sumwsqr + sumwsqrsq
                ) / (1 + n)
                z = phi + 1 / (2 * n)
            else:
                barw = (wfake + sumw) / (1 + n)
                barwsq = (wfake * wfake + sumwsq) / (1 + n)
                barwr = sign * (wfake * rr + sumwr) / (1 + n)
                barwsqr = sign * (wfake * wfake * rr + sumwsqr) / (1 + n)
                barwsqrsq = (wfake * wfake * rr * rr + sumwsqrsq) / (1 + n)
                if not barwsq > barw**2:
                    continue
                x = barwr + ((1 - barw) * (barwsqr - barw * barwr) / (barwsq - barw**2))
                y = (barwsqr - barw * barwr) ** 2 / (barwsq - barw**2) - (barwsqrsq - barwr**2)
                z = phi + (1 / 2) * (1 - barw) ** 2 / (barwsq - barw**2)
            if math.isclose(y * z, 0, abs_tol=atol * atol):
                candidates.append(x - math.sqrt(2) * atol)
            elif z <= 0 and y * z >= 0:
                candidates.append(x - math.sqrt(2 * y * z))
        best = sign * min(candidates) if candidates else (rmin if sign > 0 else rmax)
        bounds.append(min(rmax, max(rmin, best)))
    return bounds


def z(p: float) -> float:
    return NormalDist().inv_cdf(p)


# -- equal to the loops -----------------------------------------------------------------------


ESTIMATORS = {"IPS": IPS, "SNIPS": SNIPS, "DM": DM, "DR": DR}


@pytest.mark.parametrize(("seed", "k"), CASES)
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimate_and_gaussian_interval_equal_loops(name: str, seed: int, k: int) -> None:
    d = logged(seed, k)
    estimator = ESTIMATORS[name]()
    x = loop_contributions(name, d)
    assert estimator.round_rewards(**d).tolist() == pytest.approx(x, **TOL)
    value = loop_mean(x)
    assert estimator.estimate_policy_value(**d) == pytest.approx(value, **TOL)
    for alpha in (0.05, 0.1):
        if name == "SNIPS":  # the delta method: sd of w·(r − V̂) / mean(w)
            w, r = loop_weights(d), d["reward"]
            influence = [w[i] * (r[i] - value) / loop_mean(w) for i in range(len(w))]
            sd = math.sqrt(sum(v * v for v in influence) / (len(w) - 1))
        else:
            sd = loop_sd(x)
        half = z(1 - alpha / 2) * sd / math.sqrt(len(x))
        interval = estimator.estimate_interval(**d, alpha=alpha)
        assert interval.method == "gaussian" and interval.alpha == alpha
        assert interval.value == pytest.approx(value, **TOL)
        assert interval.lower == pytest.approx(value - half, **TOL)
        assert interval.upper == pytest.approx(value + half, **TOL)


@pytest.mark.parametrize(("seed", "k"), CASES)
@pytest.mark.parametrize("name", ["IPS", "DM", "DR"])
def test_bernstein_interval_equals_loops(name: str, seed: int, k: int) -> None:
    d = logged(seed, k)
    x = loop_contributions(name, d)
    n, value = len(x), loop_mean(x)
    for alpha, bounds in ((0.05, None), (0.1, (-1.0, 2.0)), (0.05, (-3.0, 5.0))):
        low, high = bounds or (min(d["reward"]), max(d["reward"]))
        span = loop_bernstein_range(name, d, low, high)
        log = math.log(4 / alpha)  # δ = α/2 per side
        half = math.sqrt(2 * loop_sd(x) ** 2 * log / n) + 7 * span * log / (3 * (n - 1))
        lower, upper = value - half, value + half
        if name != "DM":
            lower, upper = min(high, max(low, lower)), max(low, min(high, upper))
        interval = ESTIMATORS[name]().estimate_interval(
            **d, alpha=alpha, method="bernstein", reward_bounds=bounds
        )
        assert (interval.value, interval.lower, interval.upper) == pytest.approx(
            (value, lower, upper), **TOL
        )
        assert interval.method == "bernstein"


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_cressie_read_interval_equals_loops(seed: int, k: int) -> None:
    d = logged(seed, k)
    w, r = loop_weights(d), [float(v) for v in d["reward"]]
    for alpha, bounds in ((0.05, None), (0.1, (-2.0, 3.0))):
        low, high = bounds or (min(r), max(r))
        interval = SNIPS().estimate_interval(
            **d, alpha=alpha, method="cressie-read", reward_bounds=bounds
        )
        assert [interval.lower, interval.upper] == pytest.approx(
            loop_cressie_read(w, r, low, high, alpha), **TOL
        )
        assert interval.value == pytest.approx(loop_mean(loop_contributions("SNIPS", d)), **TOL)
        assert low <= interval.lower <= interval.value <= interval.upper <= high


def test_student_t_quantile() -> None:
    table = {  # scipy.stats.t.ppf
        (0.975, 1): 12.706204736174694,
        (0.975, 3): 3.1824463052837078,
        (0.95, 4.5): 2.065575888878524,
        (0.975, 10): 2.228138851986274,
        (0.995, 30): 2.7499956535672254,
        (0.975, 999): 1.9623414611334493,
        (0.975, 5000): 1.9604385517065073,
        (0.9999, 1e6): 3.719030274762571,
    }
    for (p, df), expected in table.items():
        assert student_t_quantile(p, df) == pytest.approx(expected, rel=1e-10)
        assert student_t_quantile(1 - p, df) == pytest.approx(-expected, rel=1e-10)
    assert student_t_quantile(0.975, 1e12) == pytest.approx(z(0.975), rel=1e-10)


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_weights_and_effective_sample_size_equal_loops(seed: int, k: int) -> None:
    d = logged(seed, k)
    w = loop_weights(d)
    weights = importance_weights(
        action=d["action"], pscore=d["pscore"], action_dist=d["action_dist"]
    )
    assert weights.tolist() == pytest.approx(w, **TOL)
    assert effective_sample_size(weights) == pytest.approx(
        sum(w) ** 2 / sum(v * v for v in w), **TOL
    )
    assert max_weight(weights) == max(w)
    assert effective_sample_size(np.zeros(3)) == 0.0 == max_weight(np.array([]))
    assert effective_sample_size(np.ones(7)) == pytest.approx(7)


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_paired_difference_equals_loops(seed: int, k: int) -> None:
    d = logged(seed, k)
    other = dict(d, action_dist=logged(seed + 100, k)["action_dist"])
    first, second = IPS().round_rewards(**d), IPS().round_rewards(**other)
    diff = [float(a - b) for a, b in zip(first, second, strict=True)]
    n, value, sd = len(diff), loop_mean(diff), loop_sd(diff)
    for alpha in (0.05, 0.2):
        two = paired_difference(first, second, alpha=alpha)
        half = z(1 - alpha / 2) * sd / math.sqrt(n)
        assert (two.value, two.lower, two.upper) == pytest.approx(
            (value, value - half, value + half), **TOL
        )
        one = paired_difference(first, second, alpha=alpha, one_sided=True)
        assert one.lower == pytest.approx(value - z(1 - alpha) * sd / math.sqrt(n), **TOL)
        assert one.upper == math.inf
        bound = max(abs(v) for v in diff) * 1.5
        for one_sided, log in ((False, math.log(4 / alpha)), (True, math.log(2 / alpha))):
            for given, span in ((None, max(diff) - min(diff)), (bound, 2 * bound)):
                half = math.sqrt(2 * sd * sd * log / n) + 7 * span * log / (3 * (n - 1))
                b = paired_difference(
                    first, second, alpha=alpha, one_sided=one_sided, method="bernstein", bound=given
                )
                assert b.lower == pytest.approx(value - half, **TOL)
                assert b.upper == (math.inf if one_sided else pytest.approx(value + half, **TOL))


# -- additive moments -------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_moments_per_bucket_add_up_to_the_array_intervals(seed: int, k: int) -> None:
    d = logged(seed, k)
    w, r = loop_weights(d), d["reward"]
    bucket = np.random.default_rng(seed).integers(0, 7, size=len(r))
    parts = Moments.per_bucket(np.array(w), r, bucket, 7)
    assert len(parts) == 7
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    whole = Moments.of(w, r)
    expected = {
        "n": len(w),
        "sum_w": sum(w),
        "sum_w2": sum(v * v for v in w),
        "sum_wr": sum(w[i] * r[i] for i in range(len(w))),
        "sum_wr2": sum((w[i] * r[i]) ** 2 for i in range(len(w))),
        "sum_w2r": sum(w[i] ** 2 * r[i] for i in range(len(w))),
    }
    for field, value in expected.items():
        assert getattr(total, field) == pytest.approx(value, **TOL)
        assert getattr(whole, field) == pytest.approx(value, **TOL)
    for b in range(7):
        assert parts[b].n == int((bucket == b).sum())
    for alpha in (0.05, 0.1):
        for moments, estimator in ((total.ips, IPS()), (total.snips, SNIPS())):
            got, want = moments(alpha), estimator.estimate_interval(**d, alpha=alpha)
            assert (got.value, got.lower, got.upper) == pytest.approx(
                (want.value, want.lower, want.upper), **TOL
            )
    assert total.effective_sample_size == pytest.approx(effective_sample_size(np.array(w)), **TOL)


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_mean_moments_per_bucket_add_up_to_the_array_intervals(seed: int, k: int) -> None:
    d = logged(seed, k)
    x = DR().round_rewards(**d)
    second = IPS().round_rewards(**d)
    bucket = np.random.default_rng(seed).integers(0, 5, size=len(x))
    parts = MeanMoments.per_bucket(x, bucket, 5)
    total = parts[0] + parts[1] + parts[2] + parts[3] + parts[4]
    assert total.n == len(x)
    assert total.total == pytest.approx(sum(float(v) for v in x), **TOL)
    assert total.total_sq == pytest.approx(sum(float(v) ** 2 for v in x), **TOL)
    for alpha in (0.05, 0.1):
        got, want = total.interval(alpha), DR().estimate_interval(**d, alpha=alpha)
        assert (got.value, got.lower, got.upper) == pytest.approx(
            (want.value, want.lower, want.upper), **TOL
        )
    diff = MeanMoments.of(x - second).interval(one_sided=True)
    want = paired_difference(x, second, one_sided=True)
    assert (diff.value, diff.lower, diff.upper) == pytest.approx(
        (want.value, want.lower, want.upper), **TOL
    )


def test_moments_of_an_empty_bucket_and_few_events() -> None:
    parts = Moments.per_bucket(np.ones(3), np.ones(3), np.array([0, 0, 2]), 3)
    assert parts[1] == Moments(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="no events"):
        parts[1].ips()
    with pytest.raises(ValueError, match="no events"):
        MeanMoments(0, 0.0, 0.0).interval()
    single = parts[2].ips()
    assert single.value == 1 and single.lower == -math.inf and single.upper == math.inf
    assert single.to_json() == {
        "value": 1.0,
        "lower": None,
        "upper": None,
        "method": "gaussian",
        "confidence": 0.95,
    }


# -- a population with a known value ----------------------------------------------------------

CONTEXT_P = np.array([0.4, 0.3, 0.2, 0.1])
MEANS = np.array([
    [0.10, 0.30, 0.50, 0.20, 0.05],
    [0.60, 0.20, 0.10, 0.30, 0.40],
    [0.20, 0.20, 0.70, 0.10, 0.30],
    [0.05, 0.10, 0.20, 0.90, 0.50],
])  # fmt: skip
LOGGING = np.full((4, 5), 0.04) + 0.8 * np.eye(5)[[1, 0, 0, 4]]  # epsilon-greedy, epsilon 0.2
TARGET = np.array([
    [0.05, 0.05, 0.70, 0.15, 0.05],
    [0.60, 0.10, 0.10, 0.10, 0.10],
    [0.10, 0.00, 0.80, 0.10, 0.00],
    [0.00, 0.00, 0.10, 0.90, 0.00],
])  # fmt: skip
TRUE_VALUE = float(CONTEXT_P @ (TARGET * MEANS).sum(axis=1))
REPLICATIONS, EVENTS = 200, 3000


@pytest.fixture(scope="module")
def replications() -> dict[tuple[str, str], list[Interval]]:
    rng = np.random.default_rng(20240601)
    shape = (REPLICATIONS, EVENTS)
    x = rng.choice(4, size=shape, p=CONTEXT_P)
    a = (rng.random(shape)[..., None] > np.cumsum(LOGGING, axis=1)[x][..., :-1]).sum(axis=-1)
    r = (rng.random(shape) < MEANS[x, a]).astype(float)
    models = np.clip(MEANS + rng.normal(0, 0.1, (REPLICATIONS, 4, 5)), 0, 1)  # imperfect
    found: dict[tuple[str, str], list[Interval]] = {}
    for i in range(REPLICATIONS):
        d = {
            "reward": r[i],
            "action": a[i],
            "pscore": LOGGING[x[i], a[i]],
            "action_dist": TARGET[x[i]],
            "estimated_rewards": models[i][x[i]],
        }
        for name, robust in (("IPS", "bernstein"), ("SNIPS", "cressie-read"), ("DR", "bernstein")):
            for method in ("gaussian", robust):
                interval = ESTIMATORS[name]().estimate_interval(
                    **d, method=method, reward_bounds=(0.0, 1.0)
                )
                found.setdefault((name, method), []).append(interval)
    return found


def test_the_population_value_is_known() -> None:
    value = 0.0
    for x in range(4):
        for a in range(5):
            value += float(CONTEXT_P[x] * TARGET[x, a] * MEANS[x, a])
    assert math.isclose(TRUE_VALUE, value, rel_tol=1e-12)
    assert np.allclose(LOGGING.sum(axis=1), 1) and np.allclose(TARGET.sum(axis=1), 1)


@pytest.mark.parametrize(
    ("name", "method", "coverage"),
    [
        ("IPS", "gaussian", 0.90),
        ("SNIPS", "gaussian", 0.90),
        ("DR", "gaussian", 0.90),
        ("IPS", "bernstein", 0.95),
        ("SNIPS", "cressie-read", 0.95),
        ("DR", "bernstein", 0.95),
    ],
)
def test_intervals_cover_the_true_value(replications, name, method, coverage) -> None:
    intervals = replications[name, method]
    covered = np.mean([i.lower <= TRUE_VALUE <= i.upper for i in intervals])
    assert covered >= coverage, f"{name} {method}: covered {covered:.3f}"


@pytest.mark.parametrize("name", ["IPS", "SNIPS", "DR"])
def test_estimates_are_unbiased(replications, name) -> None:
    values = np.array([i.value for i in replications[name, "gaussian"]])
    error = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - TRUE_VALUE) < 4 * error


# -- errors and shapes ------------------------------------------------------------------------


def test_bad_inputs_are_refused_clearly() -> None:
    d = logged(0, 3, n=10)
    with pytest.raises(ValueError, match="no events"):
        IPS().estimate_policy_value(
            reward=np.array([]), action=np.array([], dtype=int), pscore=np.array([]),
            action_dist=np.zeros((0, 3)),
        )  # fmt: skip
    with pytest.raises(ValueError, match="same length"):
        IPS().estimate_policy_value(**dict(d, pscore=d["pscore"][:-1]))
    with pytest.raises(ValueError, match=r"shape \(10, K\)"):
        IPS().estimate_policy_value(**dict(d, action_dist=d["action_dist"][:-1]))
    with pytest.raises(ValueError, match="pscore"):
        IPS().estimate_policy_value(**dict(d, pscore=np.where(np.arange(10) == 3, 0, d["pscore"])))
    with pytest.raises(ValueError, match="action indices"):
        IPS().estimate_policy_value(**dict(d, action=d["action"] + 3))
    with pytest.raises(ValueError, match="integer"):
        IPS().estimate_policy_value(**dict(d, action=d["action"].astype(float)))
    with pytest.raises(ValueError, match="sum to 1"):
        IPS().estimate_policy_value(**dict(d, action_dist=d["action_dist"] * 0.5))
    with pytest.raises(ValueError, match="estimated_rewards"):
        DR().estimate_policy_value(**dict(d, estimated_rewards=None))
    with pytest.raises(ValueError, match="estimated_rewards"):
        DM().estimate_policy_value(**dict(d, estimated_rewards=d["estimated_rewards"][:, :2]))
    with pytest.raises(ValueError, match="method"):
        SNIPS().estimate_interval(**d, method="bernstein")
    with pytest.raises(ValueError, match="method"):
        IPS().estimate_interval(**d, method="cressie-read")
    with pytest.raises(ValueError, match="alpha"):
        IPS().estimate_interval(**d, alpha=1.5)
    with pytest.raises(ValueError, match="reward_bounds"):
        IPS().estimate_interval(**d, method="bernstein", reward_bounds=(0.0, 0.5))
    with pytest.raises(ValueError, match="one length"):
        paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="no events"):
        paired_difference(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="bound"):
        paired_difference(np.array([0.0, 3.0]), np.zeros(2), method="bernstein", bound=1.0)
    with pytest.raises(ValueError, match="SNIPS is undefined"):
        zero = np.zeros_like(d["action_dist"])
        zero[np.arange(10), (d["action"] + 1) % 3] = 1
        SNIPS().estimate_policy_value(**dict(d, action_dist=zero))


def test_interval_to_json() -> None:
    interval = Interval(0.5, 0.25, math.inf, "bernstein", 0.1)
    document = interval.to_json()
    assert document == {
        "value": 0.5,
        "lower": 0.25,
        "upper": None,
        "method": "bernstein",
        "confidence": 0.9,
    }
    json.dumps(document, allow_nan=False)
