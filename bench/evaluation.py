"""Evaluation speed: the off-policy estimators over 1M logged events, and the offline replay.

`python3 -m bench.evaluation [--events N] [--actions K] [--replay-events M] [--seed S] [--profile]`

No database. Everything timed is built before the clock starts; each figure is the median of
three runs (the replay configurations alternate within each round).

1. Estimators (target ≤ 1 s per call). N seeded logged events over K actions, as numpy arrays:
   4 context types, the logging policy epsilon-greedy (0.2) on one action per context type
   (`action`, `pscore`), the evaluated policy epsilon-greedy on another (`action_dist`, (N, K)),
   Bernoulli rewards with per-(context, action) means, and a reward model's noisy predictions
   of those means (`estimated_rewards`, (N, K), for DM and DR only). For IPS, SNIPS, DM and DR
   of `policies.estimators`: the seconds of `estimate_policy_value`, of `estimate_interval`
   (Gaussian) and of `estimate_interval` with the estimator's robust method (Bernstein;
   Cressie-Read for SNIPS). Each call validates its arrays, as the service's calls do.
2. Replay (target ≥ 10,000 events/s per policy). M seeded final events as the log holds them:
   the VW JSON text of `policies.vw.example_text` (a context of 3 features, K actions of 20
   features each: 10 one-hot strings, 10 numbers), the logged position, its logging probability
   and the reward. Timed: the `Replay.add` calls for all M events and `result()` (not the
   workspaces' creation), for
   - the full replay as `app.loop.evaluations.evaluate` configures it: Online (the default
     policy), Baseline, Random and one custom policy, plus the shared reward model;
   - each policy alone, `Replay([spec], reward_model_arguments=None)` (how
     `policies.optimization` replays a candidate), and the reward model alone (`Replay([])`).
   "Events/s per policy" means two things, both reported:
   - alone: M / the seconds of that policy's replay on its own (a learning policy parses and
     predicts-then-learns every event; Baseline and Random only do the replay's bookkeeping
     plus a `json.loads` of the example to count its actions, which in the full replay the
     reward model's prediction gives);
   - in the full replay: M × L / its seconds, L = 2 learning policies (Online and the custom
     one): the whole replay's time (reward model, fixed policies, bookkeeping) charged equally
     to the policies that learn. Also shown per VW workspace: M × (L + 1) / seconds.
   `--profile` adds a cProfile (top 15 by own time) of one more full replay and the share of
   its time in VW's C++ learning, VW's JSON parser, vowpal-wabbit-next's Python wrappers, and
   `policies/`.
3. `report()` (no target): the evaluation report's data from a synthetic `ReplayResult` of N
   events and the four policies (every estimator and interval per policy, the timeseries).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.estimators import DM, DR, IPS, SNIPS
from policies.evaluation_report import report
from policies.features import Action
from policies.replay import (
    NON_LEARNING,
    REWARD_MODEL_ARGUMENTS,
    LoggedEvent,
    PolicySpec,
    Replay,
    ReplayResult,
)
from policies.vw import example_text

DESCRIPTION = "Evaluation speed: estimators over 1M logged events, replay events/s per policy."
SEED = 20240601
RUNS = 3
EPSILON = 0.2
TARGET_ESTIMATOR_S = 1.0
TARGET_REPLAY_RATE = 10_000.0
CONTEXT_TYPES = 4
FEATURES = 20  # per action: half one-hot strings, half numbers
TIERS = ("a", "b", "c", "d")
DEVICES = ("mobile", "desktop", "tablet")
CUSTOM_ARGUMENTS = "--cb_explore_adf --cb_type ips -l 0.01 -q ::"
ESTIMATORS = (IPS, SNIPS, DM, DR)
ROBUST = {"IPS": "bernstein", "SNIPS": "cressie-read", "DM": "bernstein", "DR": "bernstein"}
REWARD_MODEL = "reward model"


def _timed(call: Callable[..., Any], /, **arguments: Any) -> float:
    gc.collect()
    start = time.perf_counter()
    call(**arguments)
    return time.perf_counter() - start


# -- 1. estimators ----------------------------------------------------------------------------


def logged_arrays(n: int, k: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded single-slot arrays (OBP's convention) for the estimators."""
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    context = rng.integers(0, CONTEXT_TYPES, n)
    logging = np.full((n, k), EPSILON / k)
    logging[rows, context % k] += 1 - EPSILON
    action = (logging.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)
    action = np.minimum(action, k - 1).astype(np.int64)
    evaluated = np.full((n, k), EPSILON / k)
    evaluated[rows, (context + 1) % k] += 1 - EPSILON
    means = rng.uniform(0.05, 0.5, (CONTEXT_TYPES, k))
    return {
        "reward": (rng.random(n) < means[context, action]).astype(float),
        "action": action,
        "pscore": logging[rows, action],
        "action_dist": evaluated,
        "estimated_rewards": np.clip(means[context] + rng.normal(0, 0.05, (n, k)), 0, 1),
    }


def time_estimators(arrays: dict[str, np.ndarray], runs: int) -> dict[str, dict[str, Any]]:
    """Per estimator: the median seconds of its value, interval and robust interval."""
    timings: dict[str, dict[str, list[float]]] = {
        e.__name__: {"value": [], "interval": [], "robust_interval": []} for e in ESTIMATORS
    }
    for _ in range(runs):
        for estimator in ESTIMATORS:
            name, instance = estimator.__name__, estimator()
            data = dict(arrays)
            if not estimator.needs_model:
                del data["estimated_rewards"]
            times = timings[name]
            times["value"].append(_timed(instance.estimate_policy_value, **data))
            times["interval"].append(_timed(instance.estimate_interval, **data))
            robust = _timed(instance.estimate_interval, **data, method=ROBUST[name])
            times["robust_interval"].append(robust)
    results: dict[str, dict[str, Any]] = {}
    for name, times in timings.items():
        medians = {f"{call}_s": statistics.median(ts) for call, ts in times.items()}
        results[name] = {
            **medians,
            "robust_method": ROBUST[name],
            "pass": max(medians.values()) <= TARGET_ESTIMATOR_S,
        }
    return results


# -- 2. replay --------------------------------------------------------------------------------


def logged_events(m: int, k: int, seed: int) -> list[LoggedEvent]:
    """Seeded final events: epsilon-greedy logging on a random action; the tier's action pays."""
    rng = random.Random(seed)
    events = []
    for seq in range(m):
        tier = rng.randrange(len(TIERS))
        context = [
            {"user": {"tier": TIERS[tier], "visits": rng.randint(1, 50)}},
            {"device": rng.choice(DEVICES)},
        ]
        actions = [
            Action(
                f"item-{a}",
                [
                    {f"c{j}": f"v{rng.randrange(10)}" for j in range(FEATURES // 2)}
                    | {f"n{j}": round(rng.random(), 4) for j in range(FEATURES - FEATURES // 2)}
                ],
            )
            for a in range(k)
        ]
        pmf = [EPSILON / k] * k
        pmf[rng.randrange(k)] += 1 - EPSILON
        chosen = rng.choices(range(k), weights=pmf)[0]
        reward = 1.0 if rng.random() < (0.7 if chosen == tier % k else 0.2) else 0.0
        example = example_text(context, actions)
        events.append(LoggedEvent(seq, 1.7e9 + seq, example, chosen, pmf[chosen], reward))
    return events


def replay_specs() -> list[PolicySpec]:
    """What `evaluate` replays with one custom policy (exploration applied)."""
    return [
        PolicySpec("Online", "Online", with_epsilon(DEFAULT_ARGUMENTS, EPSILON)),
        PolicySpec("Baseline", "Baseline", None),
        PolicySpec("Random", "Random", None),
        PolicySpec("custom", "Custom", with_epsilon(CUSTOM_ARGUMENTS, EPSILON)),
    ]


def _configurations(specs: list[PolicySpec]) -> dict[str, Callable[[], Replay]]:
    """The full replay, each policy alone (no reward model), the reward model alone."""
    configurations: dict[str, Callable[[], Replay]] = {"full": lambda: Replay(specs)}
    for spec in specs:
        configurations[spec.name] = lambda spec=spec: Replay([spec], reward_model_arguments=None)
    configurations[REWARD_MODEL] = lambda: Replay([])
    return configurations


def _replay_once(make: Callable[[], Replay], events: list[LoggedEvent]) -> tuple[float, float]:
    """Wall and CPU seconds of one replay (the workspaces are created before the clock starts)."""
    replay = make()
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    for event in events:
        replay.add(event)
    result = replay.result()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.events == len(events)
    return elapsed, cpu


def time_replay(events: list[LoggedEvent], specs: list[PolicySpec], runs: int) -> dict[str, Any]:
    m = len(events)
    learning = sum(s.source not in NON_LEARNING for s in specs)
    configurations = _configurations(specs)
    seconds: dict[str, list[float]] = {name: [] for name in configurations}
    cpu: dict[str, list[float]] = {name: [] for name in configurations}
    for _ in range(runs):  # alternate the configurations within each round
        for name, make in configurations.items():
            elapsed, used = _replay_once(make, events)
            seconds[name].append(elapsed)
            cpu[name].append(used)
    full = statistics.median(seconds["full"])
    alone = {
        name: {
            "seconds": statistics.median(ts),
            "cpu_seconds": statistics.median(cpu[name]),
            "events_per_s": m / statistics.median(ts),
        }
        for name, ts in seconds.items()
        if name != "full"
    }
    per_policy = m * learning / full
    policies_alone = [v["events_per_s"] for name, v in alone.items() if name != REWARD_MODEL]
    return {
        "events": m,
        "features_per_action": FEATURES,
        "policies": [{"name": s.name, "source": s.source, "arguments": s.arguments} for s in specs],
        "reward_model_arguments": REWARD_MODEL_ARGUMENTS,
        "learning_policies": learning,
        "full": {
            "seconds": full,
            "cpu_seconds": statistics.median(cpu["full"]),
            "events_per_s": m / full,
            "events_per_s_per_learning_policy": per_policy,
            "events_per_s_per_workspace": m * (learning + 1) / full,
        },
        "alone": alone,
        "runs_s": seconds,
        "target_events_per_s": TARGET_REPLAY_RATE,
        "pass": per_policy >= TARGET_REPLAY_RATE and min(policies_alone) >= TARGET_REPLAY_RATE,
    }


def profile_replay(events: list[LoggedEvent], specs: list[PolicySpec]) -> pstats.Stats:
    """A cProfile of one more full replay."""
    replay = Replay(specs)
    profiler = cProfile.Profile()
    profiler.enable()
    for event in events:
        replay.add(event)
    replay.result()
    profiler.disable()
    return pstats.Stats(profiler)


OWN_POLICIES = "policies/ (own time, see below)"


def time_shares(stats: pstats.Stats) -> dict[str, float]:
    """The share of the profiled time (own time) by where it is spent, largest first. A C++ call
    made through `functools.partial` is invisible to cProfile: it counts as its caller's time."""
    learn, parse, core, wrappers = (
        "VW learn (C++)",
        "VW JSON parse (C++)",
        "other VW C++ calls",
        "vowpal-wabbit-next Python wrappers",
    )
    shares = dict.fromkeys((learn, parse, core, wrappers, OWN_POLICIES, "other"), 0.0)
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():
        if "vowpal_wabbit_next._core" in function:
            if "predict_then_learn" in function or "learn_multi" in function:
                shares[learn] += own
            elif "parse" in function:
                shares[parse] += own
            else:
                shares[core] += own
        elif "vowpal_wabbit_next" in filename:
            shares[wrappers] += own
        elif "/policies/" in filename:
            shares[OWN_POLICIES] += own
        else:
            shares["other"] += own
    total = sum(shares.values()) or 1.0
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    return {name: own / total for name, own in ranked}


# -- 3. report() ------------------------------------------------------------------------------


def replay_result(n: int, specs: list[PolicySpec], seed: int) -> ReplayResult:
    """A synthetic `ReplayResult` of n events (one per second) for the given policies."""
    rng = np.random.default_rng(seed)
    pscore = rng.choice([0.04, 0.84], n)
    return ReplayResult(
        specs=tuple(specs),
        timestamp=1.7e9 + np.arange(n, dtype=float),
        reward=(rng.random(n) < 0.3).astype(float),
        pscore=pscore,
        q_logged=rng.uniform(0, 1, n),
        p_logged=tuple(rng.choice([0.04, 0.84], n) for _ in specs),
        dm=tuple(rng.uniform(0, 1, n) for _ in specs),
    )


def time_report(n: int, specs: list[PolicySpec], seed: int, runs: int) -> dict[str, Any]:
    result = replay_result(n, specs, seed)
    seconds = [_timed(report, result=result, meta={}) for _ in range(runs)]
    return {"events": n, "policies": len(specs), "seconds": statistics.median(seconds)}


# -- run, main --------------------------------------------------------------------------------


def run(
    events: int = 1_000_000,
    actions: int = 5,
    replay_events: int = 20_000,
    seed: int = SEED,
    *,
    runs: int = RUNS,
) -> dict:
    """The three measurements as plain JSON-able figures (seconds, events/s, PASS booleans):
    `estimators` {IPS, SNIPS, DM, DR: {value_s, interval_s, robust_interval_s, robust_method,
    pass}}, `estimators_pass`; `replay` {events, policies, learning_policies, full: {seconds,
    cpu_seconds, events_per_s, events_per_s_per_learning_policy, events_per_s_per_workspace},
    alone: {policy name or "reward model": {seconds, cpu_seconds, events_per_s}}, runs_s, pass};
    `report` {events, policies, seconds}. Seconds are medians of `runs` runs."""
    arrays = logged_arrays(events, actions, seed)
    estimators = time_estimators(arrays, runs)
    del arrays
    specs = replay_specs()
    replay = time_replay(logged_events(replay_events, actions, seed), specs, runs)
    return {
        "events": events,
        "actions": actions,
        "seed": seed,
        "runs": runs,
        "estimators": estimators,
        "estimator_target_s": TARGET_ESTIMATOR_S,
        "estimators_pass": all(e["pass"] for e in estimators.values()),
        "replay": replay,
        "report": time_report(events, specs, seed, runs),
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_results(results: dict) -> None:
    runs, n, k = results["runs"], results["events"], results["actions"]
    target = f"<= {TARGET_ESTIMATOR_S:g} s"
    print(f"\n1. Estimators over {n:,} logged events, {k} actions: seconds, median of {runs} runs")
    print(f"{'estimator':<15} {'value':>7} {'interval':>9} {'robust interval':>24}  "
          f"{'target':<8} result")  # fmt: skip
    for name, e in results["estimators"].items():
        robust = f"{e['robust_interval_s']:.3f} ({e['robust_method']})"
        print(f"{name:<15} {e['value_s']:>7.3f} {e['interval_s']:>9.3f} {robust:>24}  "
              f"{target:<8} {_verdict(e['pass'])}")  # fmt: skip
    print(f"{'all estimators':<59}  {target:<8} {_verdict(results['estimators_pass'])}")

    r = results["replay"]
    m, learning, full = r["events"], r["learning_policies"], r["full"]
    rate = f">= {TARGET_REPLAY_RATE:,.0f}"
    print(
        f"\n2. Replay of {m:,} events, {k} actions × {r['features_per_action']} features: "
        f"median of {runs} alternating runs\n"
        f"   policies: "
        + ", ".join(f"{p['name']} ({p['arguments'] or p['source']})" for p in r["policies"])
        + f"\n   reward model: {r['reward_model_arguments']}"
    )
    full_name = f"full replay ({len(r['policies'])} policies + reward model)"
    per_policy = full["events_per_s_per_learning_policy"]
    rows = [
        (full_name, full["seconds"], full["cpu_seconds"], full["events_per_s"], "", ""),
        (f"  per learning policy (M × {learning} / s)", None, None, per_policy, rate,
         _verdict(per_policy >= TARGET_REPLAY_RATE)),
        (f"  per VW workspace (M × {learning + 1} / s)", None, None,
         full["events_per_s_per_workspace"], "", ""),
    ]  # fmt: skip
    for name, a in r["alone"].items():
        ok = a["events_per_s"] >= TARGET_REPLAY_RATE
        rows.append((f"alone: {name}", a["seconds"], a["cpu_seconds"], a["events_per_s"],
                     *(("", "") if name == REWARD_MODEL else (rate, _verdict(ok)))))  # fmt: skip
    print(f"{'configuration':<42} {'wall s':>7} {'CPU s':>6} {'events/s':>9}  {'target':<9} result")
    for name, seconds, used, events_per_s, target_text, verdict in rows:
        wall = "" if seconds is None else f"{seconds:.3f}"
        cpu = "" if used is None else f"{used:.2f}"
        line = f"{name:<42} {wall:>7} {cpu:>6} {events_per_s:>9,.0f}  {target_text:<9} {verdict}"
        print(line.rstrip())
    print(f"{'all policies':<68}  {rate:<9} {_verdict(r['pass'])}")
    print("   wall seconds per run: " + "; ".join(
        f"{name} " + " ".join(f"{s:.2f}" for s in ts) for name, ts in r["runs_s"].items()
    ))  # fmt: skip

    p = results["report"]
    print(
        f"\n3. report() on a synthetic ReplayResult of {p['events']:,} events × "
        f"{p['policies']} policies (no target): {p['seconds']:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.evaluation", description=DESCRIPTION)
    parser.add_argument("--events", type=int, default=1_000_000, help="estimators' events")
    parser.add_argument("--actions", type=int, default=5)
    parser.add_argument("--replay-events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--profile", action="store_true", help="also profile one full replay")
    args = parser.parse_args()
    if args.events < 2 or args.replay_events < 1 or not 2 <= args.actions <= 50:
        parser.error("need --events ≥ 2, --replay-events ≥ 1 and --actions between 2 and 50")
    start = time.perf_counter()
    results = run(args.events, args.actions, args.replay_events, args.seed)
    print_results(results)
    print(f"\ntotal time {time.perf_counter() - start:.0f} s (setup included)")
    if args.profile:
        specs = replay_specs()
        stats = profile_replay(logged_events(args.replay_events, args.actions, args.seed), specs)
        print(
            f"\ncProfile of one full replay of {args.replay_events:,} events, top 15 by own time:"
        )
        stats.sort_stats("tottime").print_stats(15)
        print("share of the profiled time (own time, by where it is spent):")
        for name, share in time_shares(stats).items():
            print(f"  {name:<42} {100 * share:5.1f}%")
        print(
            "  (policies/ own time includes the VW calls it makes through functools.partial:"
            " cProfile cannot see those)"
        )
    elif not results["replay"]["pass"]:
        print("(the replay misses its target: --profile shows where its time goes)")


if __name__ == "__main__":
    main()
