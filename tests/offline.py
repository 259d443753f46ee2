"""A model trained offline from what the database logged, to compare with what the server serves.

It rebuilds every example from the logged context, actions and exclusions (not from the VW text
the server stored), so a wrong stored example or position would show as a different pmf.
"""

from __future__ import annotations

from typing import Any

from policies.arguments import with_epsilon
from policies.features import Action
from policies.ranking import eligible_indices, lesson
from policies.vw import Policy


def offline_model(
    db: Any,
    policy_id: int,
    arguments: str,
    exploration: float,
    scores: dict[int, float] | None = None,
) -> Policy:
    """Policy `policy_id`'s model trained on the joined stream after its start, in `seq` order.

    `scores`, when given, receives the model's probability of the logged action of each Online
    event before it learned the event (what the learner records as the policy's score)."""
    start = db.execute("SELECT start_seq FROM policies WHERE id = %s", (policy_id,)).fetchone()[0]
    rows = db.execute(
        "SELECT j.seq, j.reward, j.learn, d.context, d.actions, d.excluded, d.reward_action,"
        " d.probability, d.policy_action, d.policy_probability, d.learning_mode"
        " FROM joined j JOIN decisions d USING (event_id) WHERE j.seq > %s ORDER BY j.seq",
        (start,),
    ).fetchall()
    policy = Policy(with_epsilon(arguments, exploration))
    for (
        seq,
        reward,
        learn,
        context,
        actions,
        excluded,
        chosen,
        prob,
        p_action,
        p_prob,
        mode,
    ) in rows:
        if not learn:
            continue
        all_actions = [Action(a["id"], a["features"]) for a in actions]
        eligible = eligible_indices(all_actions, set(excluded))
        taught = lesson(
            learning_mode=mode,
            reward_position=eligible.index(chosen),
            probability=prob,
            policy_position=eligible.index(p_action),
            policy_probability=p_prob,
            reward=reward,
        )
        if taught is None:
            continue
        shown = [all_actions[i] for i in eligible]
        if scores is not None and mode == "Online":
            scores[seq] = policy.pmf(context, shown)[taught[0]]
        policy.learn(context, shown, *taught)
    return policy
