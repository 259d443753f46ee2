"""The policy's hot paths call vowpal-wabbit-next's core directly: same results as its public API."""

from __future__ import annotations

import random
import shlex
from typing import Any

import pytest
import vowpal_wabbit_next as vw

from policies.arguments import DEFAULT_ARGUMENTS
from policies.features import Action
from policies.vw import Policy, example_text

ARGUMENTS = [
    DEFAULT_ARGUMENTS,
    "--cb_explore_adf --squarecb -q ::",
    "--cb_explore_adf --softmax --lambda 1 -q ::",
    "--cb_explore_adf --cover 3 -q ::",
    "--cb_adf",  # CB labels, action scores rather than probabilities
]


class PublicPolicy:
    """`Policy` written with vowpal-wabbit-next's public API only (the reference)."""

    def __init__(self, arguments: str, model: bytes | None = None) -> None:
        self.workspace = vw.Workspace([*shlex.split(arguments), "--quiet"], model_data=model)
        self.parser = vw.JsonFormatParser(self.workspace)

    def labelled(self, example: str, chosen: int, cost: float, probability: float) -> list:
        examples = self.parser.parse_json(example)
        examples[chosen + 1].set_label(vw.CBLabel(label=(0, cost, probability)))
        return examples

    def pmf_of(self, example: str) -> list[float]:
        return _by_index(self.workspace.predict_one(self.parser.parse_json(example)))

    def learn_from(self, example: str, chosen: int, cost: float, probability: float) -> None:
        self.workspace.learn_one(self.labelled(example, chosen, cost, probability))

    def score_and_learn(
        self, example: str, chosen: int, cost: float, probability: float
    ) -> list[float]:
        examples = self.labelled(example, chosen, cost, probability)
        return _by_index(self.workspace.predict_then_learn_one(examples))


def _by_index(prediction: list[tuple[int, float]]) -> list[float]:
    values = [0.0] * len(prediction)
    for index, value in prediction:
        values[index] = float(value)
    return values


def _features(rng: random.Random) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for i in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.4:
            features[f"s{i}"] = rng.choice(["red", "green", "blue", "ünï"])
        elif kind < 0.7:
            features[f"n{i}"] = rng.uniform(-3, 3)
        elif kind < 0.85:
            features[f"b{i}"] = rng.random() < 0.5
        else:
            features[f"ns{i}"] = {"x": rng.randint(0, 5), "y": rng.choice(["p", "q"])}
    return features


def random_events(seed: int, n: int) -> list[tuple[str, str, int, float, float]]:
    """(call, example, chosen, cost, probability): random examples, 1–8 actions."""
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        k = rng.randint(1, 8)
        context = [{"user": _features(rng)}, _features(rng)]
        actions = [Action(f"a{rng.randrange(20)}-{a}", [_features(rng)]) for a in range(k)]
        call = rng.choice(["pmf_of", "learn_from", "score_and_learn", "score_and_learn"])
        cost = rng.choice([-1.0, 0.0, -rng.random(), rng.uniform(-5, 5)])
        events.append(
            (call, example_text(context, actions), rng.randrange(k), cost, rng.uniform(0.01, 1))
        )
    return events


@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_the_hot_paths_give_what_the_public_api_gives(arguments: str) -> None:
    policy, reference = Policy(arguments), PublicPolicy(arguments)
    for i, (call, example, chosen, cost, probability) in enumerate(random_events(7, 400)):
        if call == "pmf_of":
            assert policy.pmf_of(example) == reference.pmf_of(example), i
        elif call == "learn_from":
            policy.learn_from(example, chosen, cost, probability)
            reference.learn_from(example, chosen, cost, probability)
        else:
            got = policy.score_and_learn(example, chosen, cost, probability)
            assert got == reference.score_and_learn(example, chosen, cost, probability), i
        if i % 100 == 99:
            assert policy.to_bytes() == reference.workspace.serialize(), i
    assert policy.to_bytes() == reference.workspace.serialize()


def test_a_loaded_model_takes_the_same_path() -> None:
    events = random_events(11, 200)
    policy = Policy(DEFAULT_ARGUMENTS)
    for _, example, chosen, cost, probability in events[:100]:
        policy.learn_from(example, chosen, cost, probability)
    loaded = Policy.from_bytes(DEFAULT_ARGUMENTS, policy.to_bytes())
    reference = PublicPolicy(DEFAULT_ARGUMENTS, policy.to_bytes())
    for _, example, chosen, cost, probability in events[100:]:
        got = loaded.score_and_learn(example, chosen, cost, probability)
        assert got == reference.score_and_learn(example, chosen, cost, probability)
    assert loaded.to_bytes() == reference.workspace.serialize()


@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_scoring_an_event_then_learning_it_learns_what_learning_alone_learns(
    arguments: str,
) -> None:
    """The learner scores and learns each Online event in one call (`score_and_learn`); the
    end-to-end tests' offline replay learns it with `learn_from`, and predicts only when it
    records scores. Predictions change the serialized bytes (VW counts them) but no weight:
    the two models hold the same weights with the same online state."""
    scored, learned = Policy(arguments), Policy(arguments)
    for call, example, chosen, cost, probability in random_events(13, 400):
        if call == "pmf_of":
            scored.pmf_of(example)
            continue
        scored.score_and_learn(example, chosen, cost, probability)
        learned.learn_from(example, chosen, cost, probability)
    assert scored.to_bytes() != learned.to_bytes()
    assert _weights(scored) == _weights(learned)


def _weights(policy: Policy) -> str:
    return policy._workspace.json_weights(include_online_state=True)


def test_the_hot_paths_skip_the_public_wrappers(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Policy(DEFAULT_ARGUMENTS)  # built before the public API breaks

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("the public wrapper was called")

    for name in ("_check_label", "predict_one", "learn_one", "predict_then_learn_one"):
        monkeypatch.setattr(vw.Workspace, name, broken)
    monkeypatch.setattr(vw.JsonFormatParser, "parse_json", broken)
    monkeypatch.setattr(vw.Example, "set_label", broken)
    _, example, chosen, cost, probability = random_events(3, 1)[0]
    policy.learn_from(example, chosen, cost, probability)
    assert len(policy.score_and_learn(example, chosen, cost, probability)) >= 1
    assert sum(policy.pmf_of(example)) == pytest.approx(1.0)


def test_other_workspaces_keep_the_public_api_and_its_checks() -> None:
    example = example_text([{"u": {"a": 1}}], [Action("a", [{"x": 1}]), Action("b", [{"x": 2}])])
    ccb = Policy("--ccb_explore_adf")  # multiline, but CCB labels
    with pytest.raises(ValueError, match="Label type mismatch"):
        ccb.learn_from(example, 1, -1.0, 0.5)
    with pytest.raises(ValueError, match="Label type mismatch"):
        ccb.score_and_learn(example, 1, -1.0, 0.5)
    single = Policy("--cb_explore 2")  # CB labels, but one line per example
    with pytest.raises(ValueError, match="Expected single example"):
        single.pmf_of(example)


def test_a_position_outside_the_example_is_an_index_error_and_learns_nothing() -> None:
    _, example, _, cost, probability = random_events(5, 1)[0]
    policy = Policy(DEFAULT_ARGUMENTS)
    k = len(policy.pmf_of(example))
    before = policy.to_bytes()
    with pytest.raises(IndexError):
        policy.learn_from(example, k, cost, probability)
    with pytest.raises(IndexError):
        policy.score_and_learn(example, k, cost, probability)
    assert policy.to_bytes() == before
