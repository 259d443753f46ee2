"""One decision: the policy's pmf over the eligible actions, a seeded draw, the answer.

Learning modes (Personalizer's):
- Online: the answer is the sampled action, logged with the probability it was drawn with.
- Apprentice: the answer is the baseline (first non-excluded action), served with
  probability 1; the log also keeps what the policy would have chosen, which the learner
  rewards when it matches the baseline (imitation).
- LoggingOnly: the answer is the baseline; the policy's choice is logged; nothing is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.features import Action
from policies.sampling import sample
from policies.vw import Policy

LEARNING_MODES = ("Online", "Apprentice", "LoggingOnly")


@dataclass(frozen=True)
class Decision:
    """Indices refer to the request's full action list (excluded actions included)."""

    ranking: list[tuple[str, float]]  # the answer, chosen action first
    reward_action: int  # the action answered (rewardActionId)
    probability: float  # probability with which reward_action was served
    policy_action: int  # the action the policy drew
    policy_probability: float  # the policy's probability of policy_action
    pmf: list[float]  # the policy's probability of every action (0 when excluded)


def eligible_indices(actions: list[Action], excluded: set[str]) -> list[int]:
    return [i for i, a in enumerate(actions) if a.id not in excluded]


def decide(
    policy: Policy,
    context: list[dict],
    actions: list[Action],
    excluded: set[str],
    event_id: str,
    learning_mode: str,
) -> Decision:
    eligible = eligible_indices(actions, excluded)
    if not eligible:
        raise ValueError("every action is excluded")
    sub_pmf = policy.pmf(context, [actions[i] for i in eligible])
    pmf = [0.0] * len(actions)
    for i, p in zip(eligible, sub_pmf, strict=True):
        pmf[i] = p
    policy_action = eligible[sample(sub_pmf, event_id)]
    if learning_mode == "Online":
        reward_action, probability = policy_action, pmf[policy_action]
    else:
        reward_action, probability = eligible[0], 1.0
    order = [reward_action] + [i for i in range(len(actions)) if i != reward_action]
    return Decision(
        ranking=[(actions[i].id, pmf[i]) for i in order],
        reward_action=reward_action,
        probability=probability,
        policy_action=policy_action,
        policy_probability=pmf[policy_action],
        pmf=pmf,
    )


def learning_example(
    *,
    learning_mode: str,
    actions: list[Action],
    excluded: set[str],
    reward_action: int,
    probability: float,
    policy_action: int,
    policy_probability: float,
    reward: float,
) -> tuple[list[Action], int, float, float] | None:
    """What a final event teaches: (eligible actions, chosen position, cost, probability).

    None when the event teaches nothing (LoggingOnly).
    """
    eligible = eligible_indices(actions, excluded)
    sub = [actions[i] for i in eligible]
    if learning_mode == "Online":
        return sub, eligible.index(reward_action), -reward, probability
    if learning_mode == "Apprentice":
        imitated = 1.0 if policy_action == eligible[0] else 0.0
        return sub, eligible.index(policy_action), -imitated, policy_probability
    return None
