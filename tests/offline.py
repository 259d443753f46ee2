"""A model trained offline from what the database logged, to compare with what the server serves.

It rebuilds every example from the logged context, actions and exclusions (not from the VW text
the server stored), so a wrong stored example or position would show as a different model.

Models are compared exactly: every weight VW holds, with its online state (the adaptive and
normalized sums of its updates), from `json_weights(include_online_state=True)`. Predictions and a
serialize/load cycle leave that unchanged, so the served model and the offline replay are equal
exactly when they learned the same events, with the same labels, in the same order; one event
learned twice, or skipped, changes it, unless learning it moves no weight (a reward the model
already predicts exactly, e.g. 0 on a fresh model). A pmf cannot show that: with epsilon-greedy
exploration it only shows which action the model prefers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from policies.arguments import with_epsilon
from policies.features import Action
from policies.ranking import eligible_indices, lesson
from policies.vw import Policy
from tests.conftest import Server


def offline_model(
    db: Any,
    policy_id: int,
    arguments: str,
    exploration: float,
    scores: dict[int, float] | None = None,
    learned: list[int] | None = None,
) -> Policy:
    """Policy `policy_id`'s model trained on the joined stream after its start, in `seq` order.

    `scores`, when given, receives the model's probability of the logged action of each Online
    event before it learned the event (what the learner records as the policy's score);
    `learned`, when given, receives the `seq` of each event the model learned, in order."""
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
        if learned is not None:
            learned.append(seq)
    return policy


def weights(policy: Policy) -> dict[int, dict[str, Any]]:
    """Every weight of a policy's model that is not zero, by VW's index: its value and its
    online state."""
    document = json.loads(policy._workspace.json_weights(include_online_state=True))
    return {w["index"]: w for w in document["weights"]}


def model_difference(served: Policy, offline: Policy) -> str | None:
    """None when the two models are the same exactly; else where they differ."""
    ours, theirs = weights(served), weights(offline)
    if ours == theirs:
        return None
    differ = sorted(i for i in ours.keys() | theirs.keys() if ours.get(i) != theirs.get(i))
    first = differ[0]
    return (
        f"{len(ours)} weights served against {len(theirs)} offline, {len(differ)} differ;"
        f" the first at index {first}: served {ours.get(first)}, offline {theirs.get(first)}"
    )


def assert_same_model(served: Policy, offline: Policy, what: str = "the served model") -> None:
    """The served model is the offline replay exactly (every weight and its online state)."""
    difference = model_difference(served, offline)
    assert difference is None, f"{what} is not the offline replay: {difference}"


def served_model(server: Server, arguments: str, exploration: float) -> tuple[str, Policy]:
    """GET model (the champion's model a worker serves): its version and the model."""
    with server.admin() as admin:
        return model_of(admin.get("/model"), arguments, exploration)


def model_of(answer: httpx.Response, arguments: str, exploration: float) -> tuple[str, Policy]:
    """The version and the model of an answer to GET model."""
    assert answer.status_code == 200, answer.text
    return answer.headers["x-model-version"], Policy.from_bytes(
        with_epsilon(arguments, exploration), answer.content
    )


def snapshot_model(
    db: Any, policy_id: int, arguments: str, exploration: float
) -> tuple[str, Policy]:
    """A policy's newest snapshot (what a restart loads; a challenger's model is not served
    over HTTP): its version and the model."""
    row = db.execute(
        "SELECT events_learned, model FROM snapshots WHERE policy_id = %s"
        " ORDER BY cursor DESC, id DESC LIMIT 1",
        (policy_id,),
    ).fetchone()
    assert row is not None, f"policy {policy_id} has no snapshot"
    events_learned, model = row
    return f"{policy_id}.{events_learned}", Policy.from_bytes(
        with_epsilon(arguments, exploration), bytes(model)
    )


def wait_same_model(
    fetch: Callable[[], tuple[str, Policy]],
    offline: Policy,
    learned: list[int],
    what: str,
    timeout: float = 10.0,
) -> None:
    """`fetch` a served model (its version `policy.events learned`, the model) until it has
    learned as many events as the offline replay (which learned the events `learned`), as a
    served model may lag the learner by a snapshot interval; then it must be the replay exactly.
    Fails after `timeout` s, with how many events each learned and where they differ."""
    deadline = time.monotonic() + timeout
    while True:
        version, served = fetch()
        events = int(version.rsplit(".", 1)[1])
        if events >= len(learned) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    replayed = f" (seq {learned[0]}..{learned[-1]})" if learned else ""
    assert_same_model(
        served,
        offline,
        f"{what}, version {version}, {events} events learned against {len(learned)} replayed"
        f"{replayed},",
    )
