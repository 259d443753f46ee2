"""decide() and lesson() per learning mode, and the VW policy itself."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from policies.arguments import DEFAULT_ARGUMENTS
from policies.features import Action
from policies.ranking import LEARNING_MODES, Decision, decide, lesson
from policies.vw import Policy

CONTEXT = [{"user": {"tier": "gold", "age": 31}}]
ACTIONS = [Action(f"a{i}", [{"color": f"c{i}", "size": i}]) for i in range(4)]
EVENT_IDS = [f"evt-{i}" for i in range(400)]
CONTINUOUS = "--cb_explore_adf --squarecb -q ::"  # a pmf that moves with every update
SOFTMAX = "--cb_explore_adf --softmax --lambda 1 -q ::"


def trained(arguments: str = DEFAULT_ARGUMENTS, best: int = 2, rounds: int = 40) -> Policy:
    """A policy taught that `ACTIONS[best]` pays 1 and the others 0."""
    policy = Policy(arguments)
    for n in range(rounds):
        chosen = n % len(ACTIONS)
        policy.learn(CONTEXT, ACTIONS, chosen, -1.0 if chosen == best else 0.0, 0.25)
    return policy


def check_ranking(decision: Decision, actions: list[Action]) -> None:
    """Every action once, the answered action first, each with its pmf probability."""
    ids = [action_id for action_id, _ in decision.ranking]
    assert sorted(ids) == sorted(a.id for a in actions)
    assert ids[0] == actions[decision.reward_action].id
    by_id = dict(decision.ranking)
    for i, action in enumerate(actions):
        assert by_id[action.id] == decision.pmf[i]


# ---------------------------------------------------------------- decide()


@pytest.mark.parametrize(
    ("excluded", "eligible"),
    [(set(), [0, 1, 2, 3]), ({"a1"}, [0, 2, 3]), ({"a0", "a3"}, [1, 2]), ({"a0", "a1", "a2"}, [3])],
)
def test_fresh_policy_pmf_is_uniform_over_eligible_actions(excluded, eligible):
    decision = decide(Policy(DEFAULT_ARGUMENTS), CONTEXT, ACTIONS, excluded, "e1", "Online")
    for i in range(len(ACTIONS)):
        expected = 1 / len(eligible) if i in eligible else 0.0
        assert decision.pmf[i] == pytest.approx(expected, abs=1e-6)
    assert sum(decision.pmf) == pytest.approx(1.0, abs=1e-6)
    assert decision.reward_action in eligible
    check_ranking(decision, ACTIONS)


@pytest.mark.parametrize("excluded", [set(), {"a1"}, {"a2"}, {"a0", "a3"}])
def test_pmf_is_the_policys_pmf_over_the_eligible_actions(excluded):
    policy = trained(CONTINUOUS)
    eligible = [i for i, a in enumerate(ACTIONS) if a.id not in excluded]
    expected = policy.pmf(CONTEXT, [ACTIONS[i] for i in eligible])
    assert len(set(expected)) > 1, "the trained pmf should not be uniform"
    decision = decide(policy, CONTEXT, ACTIONS, excluded, "e1", "Online")
    assert [decision.pmf[i] for i in eligible] == pytest.approx(expected, abs=1e-9)
    assert all(decision.pmf[i] == 0.0 for i in range(len(ACTIONS)) if i not in eligible)


@pytest.mark.parametrize("excluded", [set(), {"a2"}, {"a0", "a1"}])
def test_online_answers_the_draw_with_its_logged_probability(excluded):
    policy = trained()
    for event_id in EVENT_IDS[:100]:
        decision = decide(policy, CONTEXT, ACTIONS, excluded, event_id, "Online")
        check_ranking(decision, ACTIONS)
        answered = ACTIONS[decision.reward_action].id
        assert answered not in excluded
        assert decision.reward_action == decision.policy_action
        assert decision.probability == dict(decision.ranking)[answered]
        assert decision.probability == decision.ranking[0][1]
        assert decision.probability == decision.pmf[decision.reward_action] > 0
        assert decision.policy_probability == decision.probability


def test_online_draws_follow_the_pmf_and_skip_excluded_actions():
    policy = trained()  # epsilon 0.2 over 3 eligible: the best gets 0.8 + 0.2 / 3
    excluded = {"a0"}
    answers = Counter(
        decide(policy, CONTEXT, ACTIONS, excluded, e, "Online").reward_action for e in EVENT_IDS
    )
    assert 0 not in answers
    assert set(answers) == {1, 2, 3}
    assert answers.most_common(1)[0][0] == 2
    share = answers[2] / len(EVENT_IDS)
    assert 0.8 < share < 0.93


def test_decision_is_deterministic_for_an_event_id():
    policy = trained(CONTINUOUS)
    for event_id in EVENT_IDS[:50]:
        first = decide(policy, CONTEXT, ACTIONS, {"a1"}, event_id, "Online")
        assert decide(policy, CONTEXT, ACTIONS, {"a1"}, event_id, "Online") == first


@pytest.mark.parametrize("mode", ["Apprentice", "LoggingOnly"])
@pytest.mark.parametrize(("excluded", "baseline"), [(set(), 0), ({"a0"}, 1), ({"a0", "a1"}, 2)])
def test_baseline_modes_answer_the_first_eligible_action(mode, excluded, baseline):
    policy = trained()
    drawn = set()
    for event_id in EVENT_IDS[:150]:
        decision = decide(policy, CONTEXT, ACTIONS, excluded, event_id, mode)
        online = decide(policy, CONTEXT, ACTIONS, excluded, event_id, "Online")
        assert decision.reward_action == baseline
        assert decision.probability == 1.0
        assert decision.ranking[0][0] == ACTIONS[baseline].id
        check_ranking(decision, ACTIONS)
        # What the policy would have done is kept: the same draw as in Online mode.
        assert decision.policy_action == online.reward_action
        assert decision.policy_probability == online.probability
        assert decision.policy_probability == decision.pmf[decision.policy_action]
        assert decision.pmf == online.pmf
        drawn.add(decision.policy_action)
    assert len(drawn) > 1, "the policy's own draws should vary across eventIds"
    assert any(a != baseline for a in drawn)


def test_every_action_excluded_is_refused():
    with pytest.raises(ValueError):
        decide(Policy(DEFAULT_ARGUMENTS), CONTEXT, ACTIONS, {a.id for a in ACTIONS}, "e", "Online")


def test_learning_modes():
    assert set(LEARNING_MODES) == {"Online", "Apprentice", "LoggingOnly"}


# ---------------------------------------------------------------- positions and lesson()


@pytest.mark.parametrize("mode", LEARNING_MODES)
@pytest.mark.parametrize("excluded", [set(), {"a1"}, {"a0", "a1"}, {"a3"}, {"a0", "a2"}])
def test_decision_positions_and_example_refer_to_the_eligible_actions(mode, excluded):
    for n in range(20):
        d = decide(Policy(SOFTMAX), CONTEXT, ACTIONS, excluded, f"pos-{n}", mode)
        eligible = [i for i, a in enumerate(ACTIONS) if a.id not in excluded]
        tags = [a["_tag"] for a in json.loads(d.example)["_multi"]]
        assert tags == [ACTIONS[i].id for i in eligible]
        assert json.loads(d.example)["FromUrl"] == CONTEXT
        assert eligible[d.reward_position] == d.reward_action
        assert eligible[d.policy_position] == d.policy_action


def teach(mode: str, **overrides):
    arguments = {
        "learning_mode": mode,
        "reward_position": 0,
        "probability": 0.5,
        "policy_position": 0,
        "policy_probability": 0.5,
        "reward": 0.0,
    }
    arguments.update(overrides)
    return lesson(**arguments)


@pytest.mark.parametrize("position", [0, 1, 3])
def test_online_lesson_is_the_answered_action(position):
    taught = teach(
        "Online",
        reward_position=position,
        probability=0.7,
        policy_position=(position + 1) % 4,
        policy_probability=0.2,
        reward=0.4,
    )
    assert taught == (position, pytest.approx(-0.4), 0.7)


@pytest.mark.parametrize("reward", [1.0, -1.0, 0.0, 3.5])
def test_online_cost_is_minus_the_reward(reward):
    assert teach("Online", reward=reward)[1] == -reward


@pytest.mark.parametrize(("position", "imitated"), [(0, 1.0), (1, 0.0), (2, 0.0)])
def test_apprentice_lesson_rewards_imitation_of_the_baseline(position, imitated):
    for reward in (0.0, 1.0, -1.0):  # the observed reward does not matter in Apprentice mode
        taught = teach(
            "Apprentice",
            reward_position=0,
            probability=1.0,
            policy_position=position,
            policy_probability=0.35,
            reward=reward,
        )
        assert taught == (position, -imitated, 0.35)


@pytest.mark.parametrize("reward", [0.0, 1.0])
def test_logging_only_teaches_nothing(reward):
    assert teach("LoggingOnly", reward=reward, policy_position=2) is None


# ---------------------------------------------------------------- Policy


@pytest.mark.parametrize("arguments", [DEFAULT_ARGUMENTS, CONTINUOUS, SOFTMAX])
@pytest.mark.parametrize("best", [0, 2, 3])
def test_learning_a_clearly_better_action_moves_the_pmf_toward_it(arguments, best):
    fresh = Policy(arguments).pmf(CONTEXT, ACTIONS)
    assert fresh == pytest.approx([0.25] * 4)
    pmf = trained(arguments, best=best).pmf(CONTEXT, ACTIONS)
    assert pmf[best] > fresh[best] + 0.1
    assert pmf[best] == max(pmf)
    assert all(pmf[best] > p for i, p in enumerate(pmf) if i != best)
    assert sum(pmf) == pytest.approx(1.0, abs=1e-5)


def test_pmf_follows_the_order_of_the_actions():
    policy = trained(CONTINUOUS, best=1)
    pmf = policy.pmf(CONTEXT, ACTIONS)
    reordered = [ACTIONS[3], ACTIONS[1], ACTIONS[0], ACTIONS[2]]
    pmf_reordered = policy.pmf(CONTEXT, reordered)
    assert pmf_reordered == pytest.approx([pmf[3], pmf[1], pmf[0], pmf[2]], abs=1e-6)


def events(seed_from: int, count: int):
    """Varied events: gold users like a1, the others anything but a1."""
    for k in range(seed_from, seed_from + count):
        rng = random.Random(k)
        tier = rng.choice(["gold", "silver"])
        context = [{"user": {"tier": tier, "age": rng.random()}}]
        chosen = rng.randrange(len(ACTIONS))
        reward = 1.0 if (chosen == 1) == (tier == "gold") else 0.0
        yield context, chosen, -reward, 0.25


PROBES = [[{"user": {"tier": t, "age": a}}] for t in ("gold", "silver") for a in (0.1, 0.9)]


def pmfs(policy: Policy) -> list[list[float]]:
    return [policy.pmf(probe, ACTIONS) for probe in PROBES]


def assert_same_pmfs(left: list[list[float]], right: list[list[float]]) -> None:
    for a, b in zip(left, right, strict=True):
        assert a == pytest.approx(b, abs=1e-9)


@pytest.mark.parametrize("arguments", [DEFAULT_ARGUMENTS, CONTINUOUS, SOFTMAX])
def test_serialisation_round_trip_gives_identical_pmfs(arguments):
    policy = Policy(arguments)
    for context, chosen, cost, probability in events(0, 200):
        policy.learn(context, ACTIONS, chosen, cost, probability)
    assert pmfs(policy) != pmfs(Policy(arguments)), "training should have changed the policy"
    reloaded = Policy.from_bytes(arguments, policy.to_bytes())
    assert_same_pmfs(pmfs(reloaded), pmfs(policy))
    assert reloaded.arguments == arguments


@pytest.mark.parametrize("arguments", [DEFAULT_ARGUMENTS, CONTINUOUS, SOFTMAX])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (100, 100), (37, 163)])
def test_learning_across_a_reload_equals_learning_in_one_go(arguments, n, m):
    straight = Policy(arguments)
    for context, chosen, cost, probability in events(0, n + m):
        straight.learn(context, ACTIONS, chosen, cost, probability)

    first = Policy(arguments)
    for context, chosen, cost, probability in events(0, n):
        first.learn(context, ACTIONS, chosen, cost, probability)
    resumed = Policy.from_bytes(arguments, first.to_bytes())
    for context, chosen, cost, probability in events(n, m):
        resumed.learn(context, ACTIONS, chosen, cost, probability)

    assert_same_pmfs(pmfs(resumed), pmfs(straight))


def test_a_reloaded_model_keeps_learning():
    policy = Policy(CONTINUOUS)
    for context, chosen, cost, probability in events(0, 50):
        policy.learn(context, ACTIONS, chosen, cost, probability)
    reloaded = Policy.from_bytes(CONTINUOUS, policy.to_bytes())
    before = pmfs(reloaded)
    for context, chosen, cost, probability in events(50, 50):
        reloaded.learn(context, ACTIONS, chosen, cost, probability)
    assert pmfs(reloaded) != before
