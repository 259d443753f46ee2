"""The policy optimization search finds interactions the base arguments lack."""

from __future__ import annotations

import random

import pytest

from policies.arguments import validate, with_epsilon
from policies.command_line import with_option
from policies.estimators import IPS
from policies.features import Action
from policies.optimization import _with_interactions, namespaces, optimize
from policies.replay import LoggedEvent, PolicySpec, Replay
from policies.vw import example_text

BASE = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -l 0.01"  # no interactions
EPSILON = 0.2
ACTIONS = [Action(f"a{i}", [{"kind": f"k{i}"}]) for i in range(3)]


def stream(n: int, seed: int = 0) -> list[LoggedEvent]:
    """Uniform logging; segment s pays (90%) only on the action of kind s, others 10%: every
    action pays the same on average, so only a segment × kind interaction helps."""
    rng = random.Random(seed)
    events = []
    for seq in range(n):
        segment = rng.randrange(3)
        example = example_text([{"user": {"segment": f"s{segment}"}}], ACTIONS)
        action = rng.randrange(3)
        reward = float(rng.random() < (0.9 if action == segment else 0.1))
        events.append(LoggedEvent(seq, 1_700_000_000.0 + seq, example, action, 1 / 3, reward))
    return events


def value_of(events: list[LoggedEvent], arguments: str) -> float:
    replay = Replay([PolicySpec("p", "Custom", with_epsilon(arguments, EPSILON))], None)
    for event in events:
        replay.add(event)
    return IPS().estimate_policy_value(**replay.result().feedback(0))


@pytest.fixture(scope="module")
def events():
    return stream(1500)


@pytest.fixture(scope="module")
def searched(events):
    calls = []
    candidates = optimize(
        events, BASE, EPSILON, progress=lambda done, total: calls.append((done, total))
    )
    return candidates, calls


def test_the_best_candidate_has_an_interaction_and_beats_the_base(events, searched):
    candidates, _ = searched
    best = candidates[0]
    assert "-q" in best.arguments.split()
    assert best.value > value_of(events, BASE) + 0.15
    assert best.value == pytest.approx(value_of(events, best.arguments))
    assert [c.value for c in candidates] == sorted((c.value for c in candidates), reverse=True)


def test_candidates_are_valid_unique_and_named_by_stage(searched):
    candidates, calls = searched
    assert candidates
    for candidate in candidates:
        assert validate(candidate.arguments) == candidate.arguments
        assert (
            candidate.name == "Hyper1"
            or candidate.name == "Hyper2"
            or (candidate.name.startswith("Inter-len") and candidate.name[9:].isdigit())
        )
    assert len({c.arguments for c in candidates}) == len(candidates)
    assert len({c.name for c in candidates}) == len(candidates)
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))
    assert 1 < len(calls) <= 24
    assert all(total == 24 for _, total in calls)


def test_the_search_is_deterministic_and_bounded(events):
    few = events[:300]
    first = optimize(few, BASE, EPSILON, max_candidates=5)
    assert first == optimize(few, BASE, EPSILON, max_candidates=5)
    calls = []
    optimize(few, BASE, EPSILON, max_candidates=3, progress=lambda d, t: calls.append(d))
    assert calls == [1, 2, 3]


def test_namespaces_are_the_first_letters_of_shared_and_action_namespaces():
    example = example_text([{"user": {"segment": "s1"}, "device": "phone"}], ACTIONS)
    event = LoggedEvent(0, 0.0, example, 0, 1.0, 0.0)
    assert namespaces([event]) == (["F", "u"], ["i", "j"])


@pytest.mark.parametrize(
    ("arguments", "terms", "expected"),
    [
        ("--cb_explore_adf -q ::", ("::",), "--cb_explore_adf -q ::"),
        ("--cb_explore_adf -q :: -l 0.1", (), "--cb_explore_adf -l 0.1"),
        ("--cb_explore_adf -qui --quadratic=uj", ("ui",), "--cb_explore_adf -q ui"),
        ("--cb_explore_adf --interactions ui", ("ui", "uj"), "--cb_explore_adf -q ui -q uj"),
    ],
)
def test_interactions_replace_every_spelling(arguments, terms, expected):
    assert _with_interactions(arguments, terms) == expected


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["--cb_explore_adf"], ["--cb_explore_adf", "-l", "0.1"]),
        (["-l", "0.5", "--cb_explore_adf"], ["-l", "0.1", "--cb_explore_adf"]),
        (["--learning_rate=0.5", "-l0.2", "--l1", "1e-6"], ["--learning_rate=0.1", "--l1", "1e-6"]),
    ],
)
def test_an_option_is_set_in_place(tokens, expected):
    assert with_option(tokens, "learning_rate", "l", "0.1") == expected
