"""The lean reference does the service's useful VW work: same pmf, same draw, same answer."""

from __future__ import annotations

import random

import pytest

from app.api.rank import rank_body
from bench import lean, load
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.vw import Policy


def _trained_policy() -> Policy:
    """The default policy after some learning, so its pmf is not uniform."""
    policy = Policy(with_epsilon(DEFAULT_ARGUMENTS, lean.EXPLORATION))
    rng = random.Random(3)
    for i in range(300):
        body = load.rank_body(rng, 5, 4)
        text = lean.vw_text(body).decode()
        policy.learn_from(text, i % 5, -float(i % 5 == 2), 0.2)
    return policy


@pytest.mark.parametrize("actions", [1, 5, 50])
def test_lean_answer_equals_the_service_decision(actions: int) -> None:
    policy = _trained_policy()
    rng = random.Random(actions)
    for i in range(40):
        body = load.rank_body(rng, actions, event_id=f"lean-{actions}-{i}")
        service = rank_body(load.encode(body), policy, "Online")
        answer = lean.decide(policy, body)
        assert answer["eventId"] == service.event_id
        assert answer["ranking"] == service.ranking  # every probability, exactly, in order
        assert answer["rewardActionId"] == service.ranking[0]["id"]
        assert service.decision.example == lean.vw_text(body).decode()


def test_lean_draws_a_fresh_event_id() -> None:
    policy = Policy(with_epsilon(DEFAULT_ARGUMENTS, lean.EXPLORATION))
    body = load.rank_body(random.Random(1), 5)
    first, second = lean.decide(policy, body), lean.decide(policy, body)
    assert first["eventId"] != second["eventId"]
    assert sum(p["probability"] for p in first["ranking"]) == pytest.approx(1.0)
