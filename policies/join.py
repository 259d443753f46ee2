"""Join rules: when a logged decision is final and which reward it is learned with.

Personalizer's rules: the reward wait time starts at the rank call (deferred or not); rewards
after it are kept but not used. With `earliest` an event is final at its first reward (once
activated, if its activation was deferred); with the other aggregations when the wait time
closes. No reward by then → the default reward. A deferred event never activated within the
wait time is final but not learned.

Two more states come from the log: a row may not count yet (`unresolved`: its write's answer
is not settled, the event waits), and a decision may be void (its rank call was answered 503,
and no retry was answered 201 since): a void event is final when its wait time closes, never
learned.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "earliest": lambda values: values[0],
    "sum": lambda values: float(sum(values)),
    "average": lambda values: float(sum(values)) / len(values),
    "median": lambda values: float(statistics.median(values)),
    "min": lambda values: float(min(values)),
    "max": lambda values: float(max(values)),
}


@dataclass(frozen=True)
class Outcome:
    """What a final event is learned with: `learn` False means it is final but skipped."""

    reward: float
    learn: bool
    reason: str  # "reward" | "default" | "not-activated" | "void"


def outcome(
    *,
    rewards: Sequence[float],
    deferred: bool,
    activated: bool,
    expired: bool,
    aggregation: str,
    default_reward: float,
    unresolved: bool = False,
    void: bool = False,
) -> Outcome | None:
    """The outcome of an event, or None while it is not final yet.

    `rewards` are the values received within the wait time, oldest first; `activated` says
    whether an activation arrived within it; `expired` whether the wait time has closed.
    """
    aggregate = AGGREGATIONS[aggregation]
    if unresolved:
        return None
    if void:
        return Outcome(default_reward, False, "void") if expired else None
    if deferred and not activated:
        return Outcome(default_reward, False, "not-activated") if expired else None
    if aggregation == "earliest" and rewards:
        return Outcome(float(rewards[0]), True, "reward")
    if not expired:
        return None
    if rewards:
        return Outcome(aggregate(rewards), True, "reward")
    return Outcome(default_reward, True, "default")
