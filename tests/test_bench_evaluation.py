"""bench.evaluation runs at small sizes and returns plain, positive, finite figures."""

from __future__ import annotations

import json
import math

from bench.evaluation import REWARD_MODEL, run


def numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def test_run_small() -> None:
    result = run(events=10_000, actions=5, replay_events=500, runs=1)
    assert json.loads(json.dumps(result)) == result  # plain JSON
    assert set(result) >= {"events", "actions", "estimators", "estimators_pass", "replay", "report"}
    assert set(result["estimators"]) == {"IPS", "SNIPS", "DM", "DR"}
    for figures in result["estimators"].values():
        assert set(figures) >= {"value_s", "interval_s", "robust_interval_s", "pass"}
    replay = result["replay"]
    assert replay["events"] == 500 and replay["learning_policies"] == 2
    assert set(replay["full"]) >= {"seconds", "events_per_s", "events_per_s_per_learning_policy"}
    assert set(replay["alone"]) == {"Online", "Baseline", "Random", "custom", REWARD_MODEL}
    assert isinstance(result["estimators_pass"], bool) and isinstance(replay["pass"], bool)
    found = list(numbers(result))
    assert found and all(math.isfinite(x) and x > 0 for x in found)
