"""The seeded draw: deterministic per eventId, distributed as the pmf over many eventIds."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from policies import sampling
from policies.sampling import sample

ROOT = Path(__file__).resolve().parents[2]
DRAWS = 20_000
EVENT_IDS = [f"event-{i:05d}" for i in range(DRAWS)]

try:
    from scipy.stats import chisquare
except ImportError:  # pragma: no cover - scipy is optional
    chisquare = None


def counts_for(pmf: list[float], event_ids: list[str] = EVENT_IDS) -> Counter[int]:
    return Counter(sample(pmf, e) for e in event_ids)


def assert_matches(pmf: list[float], counts: Counter[int]) -> None:
    """The observed counts fit `pmf` (normalised): chi-square, else a binomial tolerance."""
    total = sum(pmf)
    n = sum(counts.values())
    support = [i for i, p in enumerate(pmf) if p > 0]
    assert set(counts) <= set(support), f"drew a zero-probability action: {counts}"
    expected = [n * pmf[i] / total for i in support]
    observed = [counts.get(i, 0) for i in support]
    if chisquare is not None and len(support) > 1:
        result = chisquare(observed, expected)
        assert result.pvalue > 1e-4, (observed, expected, result)
    for i, obs, exp in zip(support, observed, expected, strict=True):
        q = pmf[i] / total
        sd = math.sqrt(n * q * (1 - q))
        assert abs(obs - exp) <= 5 * sd + 1, (i, obs, exp, sd)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("pmf", [[0.25, 0.25, 0.25, 0.25], [0.1, 0.6, 0.3], [0.05, 0.0, 0.95]])
def test_same_event_id_and_pmf_give_the_same_index(pmf):
    for event_id in EVENT_IDS[:200]:
        first = sample(pmf, event_id)
        assert all(sample(pmf, event_id) == first for _ in range(3))
        assert sample(list(pmf), event_id) == first
        assert sample(tuple(pmf), event_id) == first


def test_same_index_in_a_fresh_interpreter():
    pmf = [0.1, 0.2, 0.3, 0.4]
    ids = [*EVENT_IDS[:300], "", "ünïcödé-✓", "75269AD0-BFEE-4598-8196-C57383D38E10"]
    here = [sample(pmf, e) for e in ids]
    code = (
        "import json, sys\n"
        "from policies.sampling import sample\n"
        "pmf, ids = json.load(sys.stdin)\n"
        "print(json.dumps([sample(pmf, e) for e in ids]))\n"
    )
    for hash_seed in ("1", "2"):  # a draw that leaned on hash() would differ between these
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps([pmf, ids]),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        assert json.loads(done.stdout) == here


def test_seed_is_a_64_bit_integer_and_differs_between_event_ids():
    seeds = {sampling.seed_for(e) for e in EVENT_IDS[:1000]}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**64 for s in seeds)


# ---------------------------------------------------------------- distribution


@pytest.mark.parametrize(
    "pmf",
    [
        [0.25, 0.25, 0.25, 0.25],
        [0.5, 0.25, 0.15, 0.1],
        [0.85, 0.05, 0.05, 0.05],
        [0.02, 0.98],
        [0.2] * 5,
    ],
)
def test_frequencies_match_the_pmf(pmf):
    assert_matches(pmf, counts_for(pmf))


def test_different_event_ids_spread_over_every_action():
    pmf = [1 / 6] * 6
    counts = counts_for(pmf, EVENT_IDS[:600])
    assert set(counts) == set(range(6))


@pytest.mark.parametrize(
    "pmf",
    [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.3, 0.7, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.4, 0.0, 0.6]],
)
def test_zero_probability_actions_are_never_drawn(pmf):
    counts = counts_for(pmf)
    assert all(pmf[i] > 0 for i in counts), counts
    assert_matches(pmf, counts)


def test_single_action_with_all_the_mass():
    assert set(counts_for([0.0, 1.0, 0.0], EVENT_IDS[:2000])) == {1}
    assert set(counts_for([1.0], EVENT_IDS[:2000])) == {0}


@pytest.mark.parametrize(
    "pmf",
    [
        [2.0, 1.0, 1.0],  # sums to 4
        [0.1, 0.1, 0.2],  # sums to 0.4
        # float32 probabilities as VW returns them (sum is not exactly 1)
        [0.05000000074505806, 0.05000000074505806, 0.05000000074505806, 0.8500000238418579],
        [0.33333334, 0.33333334, 0.33333334],
        [0.3333333, 0.3333333, 0.3333333],
    ],
)
def test_pmf_not_summing_to_one(pmf):
    assert sum(pmf) != 1.0
    counts = counts_for(pmf)
    assert sum(counts.values()) == DRAWS
    assert_matches(pmf, counts)


class _FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("pmf", "u", "allowed"),
    [
        ([0.3, 0.7, 0.0], 1.0 - 2**-53, {1}),  # the very top of the range: not the zero action
        ([0.3333333, 0.3333333, 0.3333333, 0.0], 1.0 - 2**-53, {2}),
        ([0.0, 0.5, 0.5], 0.0, {1}),  # the very bottom: not the leading zero action
        ([0.0, 0.0, 0.2, 0.0], 0.0, {2}),
        ([0.0, 0.0, 0.2, 0.0], 1.0 - 2**-53, {2}),
        # u at the very top of the mass (a rounding gap): the last action with mass, not a 0
        ([0.3, 0.7, 0.0], 1.0, {1}),
        ([0.25, 0.0, 0.75, 0.0, 0.0], 1.0, {2}),
    ],
)
def test_extreme_uniform_draws_stay_on_actions_with_mass(monkeypatch, pmf, u, allowed):
    monkeypatch.setattr(sampling.np.random, "default_rng", lambda seed: _FixedRng(u))
    assert sample(pmf, "any") in allowed


@pytest.mark.parametrize("pmf", [[], [0.0], [0.0, 0.0], [math.nan, 0.5]])
def test_pmf_without_mass_is_refused(pmf):
    with pytest.raises(ValueError):
        sample(pmf, "e")


def test_index_is_a_python_int():
    index = sample(np.array([0.5, 0.5], dtype=np.float32), "e")
    assert isinstance(index, int)
    assert index in (0, 1)
