"""Join rules: when an event is final and which reward it is learned with (reference §5)."""

from __future__ import annotations

import pytest

from policies.join import AGGREGATIONS, Outcome, outcome

ALL = ("earliest", "sum", "average", "median", "min", "max")
REWARDS = [0.5, -0.25, 1.0, 0.0, 0.75]  # oldest first


def final(rewards, aggregation, *, deferred=False, activated=False, expired=True, default=0.0):
    return outcome(
        rewards=rewards,
        deferred=deferred,
        activated=activated,
        expired=expired,
        aggregation=aggregation,
        default_reward=default,
    )


def test_every_personalizer_aggregation_is_known():
    assert set(AGGREGATIONS) == set(ALL)


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("earliest", 0.5),
        ("sum", 2.0),
        ("average", 0.4),
        ("median", 0.5),
        ("min", -0.25),
        ("max", 1.0),
    ],
)
def test_aggregation_of_several_rewards(aggregation, expected):
    result = final(REWARDS, aggregation)
    assert result == Outcome(pytest.approx(expected), True, "reward")
    assert result.reward == pytest.approx(expected)
    assert isinstance(result.reward, float)


@pytest.mark.parametrize("aggregation", ALL)
def test_a_single_reward_is_that_reward(aggregation):
    assert final([0.3], aggregation) == Outcome(pytest.approx(0.3), True, "reward")


def test_earliest_is_the_oldest_not_the_smallest_or_largest():
    assert final([0.2, 0.9, -0.5], "earliest").reward == 0.2
    assert final([-0.5, 0.9, 0.2], "earliest").reward == -0.5


def test_sum_may_leave_the_reward_range():
    assert final([1.0, 1.0, 1.0], "sum").reward == pytest.approx(3.0)


def test_median_of_an_even_count_lies_between_the_middle_values():
    reward = final([4.0, 1.0, 3.0, 10.0], "median").reward
    assert 3.0 <= reward <= 4.0


def test_integer_rewards_are_learned_as_floats():
    for aggregation in ALL:
        result = final([1, 0, 1], aggregation)
        assert isinstance(result.reward, float), aggregation


@pytest.mark.parametrize("aggregation", ALL)
@pytest.mark.parametrize("default", [0.0, -1.0, 0.25])
def test_default_reward_when_no_reward_by_expiry(aggregation, default):
    assert final([], aggregation, default=default) == Outcome(default, True, "default")


@pytest.mark.parametrize("aggregation", [a for a in ALL if a != "earliest"])
@pytest.mark.parametrize("rewards", [[], [1.0], [0.2, 0.4]])
def test_not_final_before_expiry(aggregation, rewards):
    assert final(rewards, aggregation, expired=False) is None


def test_earliest_without_reward_is_not_final_before_expiry():
    assert final([], "earliest", expired=False) is None


@pytest.mark.parametrize("rewards", [[0.7], [0.7, 0.1, -1.0]])
def test_earliest_is_final_at_its_first_reward(rewards):
    assert final(rewards, "earliest", expired=False) == Outcome(0.7, True, "reward")


# ---------------------------------------------------------------- deferred activation table


@pytest.mark.parametrize("aggregation", ALL)
@pytest.mark.parametrize("rewards", [[], [1.0], [0.5, 1.0]])
def test_deferred_without_activation_is_never_learned(aggregation, rewards):
    # Before expiry: still waiting (an activation may come).
    assert final(rewards, aggregation, deferred=True, activated=False, expired=False) is None
    # At expiry: final, but skipped, even with a reward.
    result = final(rewards, aggregation, deferred=True, activated=False, default=0.3)
    assert result is not None
    assert result.learn is False
    assert result.reason == "not-activated"


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("earliest", 0.5), ("sum", 2.0), ("average", 0.4), ("median", 0.5), ("min", -0.25)],
)
def test_activated_with_reward_is_learned_with_that_reward(aggregation, expected):
    result = final(REWARDS, aggregation, deferred=True, activated=True, default=-1.0)
    assert result == Outcome(pytest.approx(expected), True, "reward")


def test_activated_earliest_is_final_at_its_first_reward():
    result = final([0.6, 0.1], "earliest", deferred=True, activated=True, expired=False)
    assert result == Outcome(0.6, True, "reward")


@pytest.mark.parametrize("aggregation", [a for a in ALL if a != "earliest"])
def test_activated_other_aggregations_wait_for_expiry(aggregation):
    assert final([0.6], aggregation, deferred=True, activated=True, expired=False) is None


@pytest.mark.parametrize("aggregation", ALL)
@pytest.mark.parametrize("default", [0.0, -0.5, 1.0])
def test_activated_without_reward_is_learned_with_the_default_reward(aggregation, default):
    assert final([], aggregation, deferred=True, activated=True, expired=False) is None
    result = final([], aggregation, deferred=True, activated=True, default=default)
    assert result == Outcome(default, True, "default")


@pytest.mark.parametrize("aggregation", ALL)
def test_activation_of_a_non_deferred_event_changes_nothing(aggregation):
    for rewards in ([], [0.25, 0.75]):
        for expired in (False, True):
            assert final(rewards, aggregation, activated=True, expired=expired) == final(
                rewards, aggregation, activated=False, expired=expired
            )


def test_unknown_aggregation_is_refused():
    with pytest.raises(KeyError):
        final([1.0], "mode")
