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
from policies.vw import Policy, example_text

LEARNING_MODES = ("Online", "Apprentice", "LoggingOnly")


@dataclass(frozen=True)
class Decision:
    """Indices refer to the request's full action list (excluded actions included); positions
    to the eligible (non-excluded) actions, the ones `example` holds."""

    ranking: list[tuple[str, float]]  # the answer, chosen action first
    reward_action: int  # the action answered (rewardActionId)
    probability: float  # probability with which reward_action was served
    policy_action: int  # the action the policy drew
    policy_probability: float  # the policy's probability of policy_action
    pmf: list[float]  # the policy's probability of every action (0 when excluded)
    example: str  # the VW JSON text the policy ranked: context and eligible actions
    reward_position: int  # reward_action's position among the eligible actions
    policy_position: int  # policy_action's position among the eligible actions


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
    example = example_text(context, [actions[i] for i in eligible])
    sub_pmf = policy.pmf_of(example)
    pmf = [0.0] * len(actions)
    for i, p in zip(eligible, sub_pmf, strict=True):
        pmf[i] = p
    policy_position = sample(sub_pmf, event_id)
    policy_action = eligible[policy_position]
    if learning_mode == "Online":
        reward_position, probability = policy_position, pmf[policy_action]
    else:  # the baseline: the first eligible action
        reward_position, probability = 0, 1.0
    reward_action = eligible[reward_position]
    order = [reward_action] + [i for i in range(len(actions)) if i != reward_action]
    return Decision(
        ranking=[(actions[i].id, pmf[i]) for i in order],
        reward_action=reward_action,
        probability=probability,
        policy_action=policy_action,
        policy_probability=pmf[policy_action],
        pmf=pmf,
        example=example,
        reward_position=reward_position,
        policy_position=policy_position,
    )


def lesson(
    *,
    learning_mode: str,
    reward_position: int,
    probability: float,
    policy_position: int,
    policy_probability: float,
    reward: float,
) -> tuple[int, float, float] | None:
    """What a final event teaches: (position in its example, cost, probability).

    Online: the served action, cost −reward, the logged probability. Apprentice: the policy's
    own draw, cost −1 when it was the baseline (position 0) and 0 otherwise, the policy's
    probability of it. LoggingOnly: nothing (None).
    """
    if learning_mode == "Online":
        return reward_position, -reward, probability
    if learning_mode == "Apprentice":
        imitated = 1.0 if policy_position == 0 else 0.0
        return policy_position, -imitated, policy_probability
    return None
