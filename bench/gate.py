"""The promotion gate's error rates: how often it promotes equal, better and worse challengers.

`python3 -m bench.gate [--events 50000] [--replications 1000] [--seed S]`

A synthetic population: 4 context types (probabilities 0.4, 0.3, 0.2, 0.1), 5 actions, Bernoulli
rewards with known means. The champion ranks with epsilon-greedy exploration (epsilon 0.2, the
service default), so it is also the logging policy; the challenger is a fixed stochastic policy.
Per event the service records what the gate reads: the reward, the logging probability of the
logged action and each policy's probability of that action. Events are i.i.d., so a replication
draws the counts of each (context, action, reward) cell from the multinomial and lays the events
out cell by cell (the gate's statistics do not depend on the order); then `gate.evidence` and
`gate.decide` with the default `GateRules`, as the service would.

Scenarios (the reward means are solved so that the true values are exactly as stated):
  equal    the challenger is greedy on another action in 70% of the traffic; same true value
  +10%     the same challenger, true value 1.1 × the champion's
  −10%     the same challenger, true value 0.9 × the champion's
  greedier the champion's greedy choice without exploration; same true value (its paired
           differences are skewed to the left, the hard case for a Gaussian lower bound)
Prints, per scenario, at `--events` and at 10,000 events: the true values, the promotion rate
with a 95% Wilson interval, the rates at which the plain one-sided 95% Gaussian bound and the
one-sided 95% empirical Bernstein bound would have been positive (for comparison), the median
effective sample size and the median lower bound.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from policies.gate import GateRules, decide, evidence
from policies.intervals import paired_difference

DESCRIPTION = "Promotion gate: promotion rates of equal, better and worse challengers."
SEED = 20240601
EPSILON = 0.2
CONTEXT_EVENTS = 10_000
TARGET_EQUAL = 0.05  # an equal challenger is promoted in at most 5% of replications
TARGET_BETTER = 0.90  # a 10%-better challenger in at least 90%, at 50,000 events
CONTEXTS = np.array([0.4, 0.3, 0.2, 0.1])
MEANS = np.array([
    [0.30, 0.20, 0.15, 0.10, 0.05],
    [0.10, 0.40, 0.20, 0.15, 0.10],
    [0.05, 0.10, 0.25, 0.20, 0.15],
    [0.20, 0.10, 0.10, 0.10, 0.35],
])  # fmt: skip
CHAMPION_GREEDY = np.array([0, 1, 2, 4])
CHALLENGER_GREEDY = np.array([3, 1, 4, 0])  # differs in contexts 0, 2 and 3 (70% of traffic)


@dataclass(frozen=True)
class World:
    name: str
    means: np.ndarray  # (contexts, actions) reward means
    champion: np.ndarray  # (contexts, actions) pmf, the logging policy
    challenger: np.ndarray

    def value(self, policy: np.ndarray) -> float:
        return float(CONTEXTS @ (policy * self.means).sum(axis=1))


def epsilon_greedy(greedy: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    k = MEANS.shape[1]
    pmf = np.full((len(greedy), k), epsilon / k)
    pmf[np.arange(len(greedy)), greedy] += 1 - epsilon
    return pmf


def ratio_world(name: str, ratio: float) -> World:
    """The challenger's greedy actions get mean + δ, δ solved so that V(C) = ratio · V(H)."""
    champion, challenger = epsilon_greedy(CHAMPION_GREEDY), epsilon_greedy(CHALLENGER_GREEDY)
    differs = np.flatnonzero(CHALLENGER_GREEDY != CHAMPION_GREEDY)
    cells = (differs, CHALLENGER_GREEDY[differs])
    base = World(name, MEANS, champion, challenger)
    slope_c = float((CONTEXTS[differs] * challenger[cells]).sum())
    slope_h = float((CONTEXTS[differs] * champion[cells]).sum())
    delta = (ratio * base.value(champion) - base.value(challenger)) / (slope_c - ratio * slope_h)
    means = MEANS.copy()
    means[cells] += delta
    assert means.min() >= 0 and means.max() <= 1
    return World(name, means, champion, challenger)


def greedier_world() -> World:
    """The challenger never explores; the explored actions' means average the greedy one's."""
    rows = np.arange(len(CHAMPION_GREEDY))
    greedy = MEANS[rows, CHAMPION_GREEDY]
    others = np.ones_like(MEANS, dtype=bool)
    others[rows, CHAMPION_GREEDY] = False
    other_mean = np.where(others, MEANS, 0).sum(axis=1) / others.sum(axis=1)
    means = np.where(others, MEANS - other_mean[:, None] + greedy[:, None], MEANS)
    return World("greedier", means, epsilon_greedy(CHAMPION_GREEDY), epsilon_greedy(
        CHAMPION_GREEDY, 0.0))  # fmt: skip


def worlds() -> list[World]:
    return [ratio_world("equal", 1.0), ratio_world("+10%", 1.1), ratio_world("−10%", 0.9),
            greedier_world()]  # fmt: skip


def replications(world: World, events: int, count: int, rng: np.random.Generator) -> dict:
    """Run the gate on `count` logged samples of `events` events each."""
    contexts, k = world.means.shape
    probability = (
        CONTEXTS[:, None, None]
        * world.champion[:, :, None]
        * np.stack([1 - world.means, world.means], axis=-1)
    ).ravel()  # P(context, logged action, reward) per cell
    x, a, r = (c.ravel() for c in np.indices((contexts, k, 2)))
    cell_reward = r.astype(float)
    cell_pscore = world.champion[x, a]
    cell_challenger = world.challenger[x, a]
    d = cell_reward * (cell_challenger - cell_pscore) / cell_pscore  # per-event difference
    mean, sd = float(probability @ d), math.sqrt(float(probability @ d**2 - (probability @ d) ** 2))
    z = NormalDist().inv_cdf(1 - GateRules().alpha / 2)
    rules = GateRules()
    largest = float(np.abs(d).max())  # a bound on |d| known in advance: rewards are in [0, 1]
    promoted, positive, plain, bernstein, ess, bounds = [], [], [], [], [], []
    for counts in rng.multinomial(events, probability, size=count):
        reward = np.repeat(cell_reward, counts)
        pscore = np.repeat(cell_pscore, counts)
        challenger = np.repeat(cell_challenger, counts)
        found = evidence(
            reward=reward, pscore=pscore, challenger_prob=challenger, champion_prob=pscore
        )
        promoted.append(decide(found, rules).promote)
        positive.append(found.lower_bound > rules.min_lift)
        first, second = challenger / pscore * reward, reward
        plain.append(paired_difference(first, second, one_sided=True).lower > rules.min_lift)
        robust = paired_difference(first, second, one_sided=True, method="bernstein", bound=largest)
        bernstein.append(robust.lower > rules.min_lift)
        ess.append(found.effective_sample_size)
        bounds.append(found.lower_bound)
    return {
        "theory": 1 - NormalDist().cdf(z - mean * math.sqrt(events) / sd),
        "promoted": int(sum(promoted)),
        "positive": int(sum(positive)),
        "plain": int(sum(plain)),
        "bernstein": int(sum(bernstein)),
        "ess": statistics.median(ess),
        "bound": statistics.median(bounds),
    }


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gate", description=DESCRIPTION)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    if args.events < 2 or args.replications < 1:
        parser.error("--events must be at least 2 and --replications at least 1")
    rng = np.random.default_rng(args.seed)
    sizes = [args.events] + ([CONTEXT_EVENTS] if args.events != CONTEXT_EVENTS else [])
    rules = GateRules()
    print(
        f"{args.replications} replications per row, seed {args.seed}; champion epsilon-greedy "
        f"{EPSILON} over {MEANS.shape[1]} actions (the logging policy); rules: min_events "
        f"{rules.min_events}, min_ess {rules.min_ess:g}, min_lift {rules.min_lift:g}, "
        f"alpha {rules.alpha:g}"
    )
    start = time.perf_counter()
    rows, rates = [], {}
    for world in worlds():
        champion, challenger = world.value(world.champion), world.value(world.challenger)
        for events in sizes:
            found = replications(world, events, args.replications, rng)
            rate = found["promoted"] / args.replications
            rates[world.name, events] = rate
            low, high = wilson(found["promoted"], args.replications)
            rows.append((
                world.name, f"{events:,}", f"{champion:.4f}", f"{challenger:.4f}",
                f"{100 * rate:.1f}%", f"{100 * low:.1f}–{100 * high:.1f}%",
                f"{100 * found['positive'] / args.replications:.1f}%",
                f"{100 * found['theory']:.1f}%",
                f"{100 * found['plain'] / args.replications:.1f}%",
                f"{100 * found['bernstein'] / args.replications:.1f}%",
                f"{found['ess']:,.0f}", f"{found['bound']:+.4f}",
            ))  # fmt: skip
    elapsed = time.perf_counter() - start
    header = ("scenario", "events", "V champion", "V challenger", "promoted", "95% Wilson",
              "bound>0", "theory", "plain z>0", "Bernstein>0", "median ESS",
              "median bound")  # fmt: skip
    print(f"\n| {' | '.join(header)} |\n|{'---|' * len(header)}")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    equal = max(rates["equal", args.events], rates["greedier", args.events])
    better = rates["+10%", args.events]
    print(
        f"\nequal challengers promoted (worst of equal, greedier) at {args.events:,} events: "
        f"{100 * equal:.1f}% (target ≤ {100 * TARGET_EQUAL:.0f}%) "
        f"{'PASS' if equal <= TARGET_EQUAL else 'FAIL'}"
        f"\n+10% challenger promoted at {args.events:,} events: {100 * better:.1f}% "
        f"(target ≥ {100 * TARGET_BETTER:.0f}%) {'PASS' if better >= TARGET_BETTER else 'FAIL'}"
        "\npromoted: the gate's verdict (all rules); bound>0: its lower bound alone was > min_lift;"
        "\ntheory: the normal approximation of P(bound > 0) from the exact mean and sd of d;"
        "\nplain z>0: the plain one-sided 95% Gaussian bound (z = 1.645) would have been > 0;"
        "\nBernstein>0: the one-sided 95% empirical Bernstein bound would have been > 0"
        f"\n{elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
