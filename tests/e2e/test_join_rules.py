"""Personalizer's join rules through HTTP, checked against what the policy learned: after each
case, GET model is exactly (every weight) the model trained offline on the joined stream.

The wait time is set to its minimum (5 s) so expiry can be observed; all events of a case are
created first and then checked together, so the module waits a few wait times in all.
"""

from __future__ import annotations

import functools
import time
import uuid

import httpx
import pytest

from policies.arguments import DEFAULT_ARGUMENTS
from policies.features import Action
from policies.vw import Policy
from tests.conftest import Server
from tests.offline import offline_model, served_model, wait_same_model

WAIT_S = 5
ACTIONS = [{"id": f"a{i}", "features": [{"kind": f"k{i}"}]} for i in range(4)]
PROBES = [[{"user": {"segment": s}}] for s in ("x", "y", "z")]


def _learned(server: Server) -> tuple[int, int]:
    policy_id, learned = httpx.get(f"{server.url}/healthz").json()["modelVersion"].split(".")
    return int(policy_id), int(learned)


def _rank(client: httpx.Client, segment: str = "x", **extra: object) -> str:
    event_id = f"join-{uuid.uuid4()}"
    body = {"contextFeatures": [{"user": {"segment": segment}}], "actions": ACTIONS}
    answer = client.post("/rank", json={**body, "eventId": event_id, **extra})
    assert answer.status_code == 201, answer.text
    return event_id


def _joined(db, event_id: str) -> tuple[float, bool, str] | None:
    row = db.execute(
        "SELECT reward, learn, reason FROM joined WHERE event_id = %s", (event_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def _wait_until(check, timeout: float = WAIT_S * 4) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _settle(db) -> None:
    """Wait until every earlier event is final, so learned counts belong to this test."""
    _wait_until(lambda: db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0)


def _assert_serves(server: Server, offline: Policy) -> None:
    actions = [Action(a["id"], a["features"]) for a in ACTIONS]
    with server.client() as client:
        for context in PROBES:
            probe = {"contextFeatures": context, "actions": ACTIONS, "deferActivation": True}
            answer = client.post("/rank", json=probe).json()  # never activated: never learned
            served = {r["id"]: r["probability"] for r in answer["ranking"]}
            expected = dict(
                zip([a.id for a in actions], offline.pmf(context, actions), strict=True)
            )
            assert served == pytest.approx(expected, abs=1e-6)


def _assert_serves_offline_model(server: Server, db, ranks: bool = True) -> None:
    """What the policy learned: GET model is exactly the model trained offline on the joined
    stream (rewards as joined, skipped events skipped), in the same order; with `ranks`, ranks
    use it (the same pmf)."""
    with server.admin() as admin:
        arguments = admin.get("/configurations/policy").json()["arguments"]
        exploration = admin.get("/configurations/service").json()["explorationPercentage"]
    policy_id, _ = _learned(server)
    learned: list[int] = []
    offline = offline_model(db, policy_id, arguments, exploration, learned=learned)
    if ranks:
        _assert_serves(server, offline)
    served = functools.partial(served_model, server, arguments, exploration)
    wait_same_model(served, offline, learned, "the served model")


def test_earliest_and_deferred_activation(server: Server, db) -> None:
    server.configure(
        rewardWaitTime=f"PT{WAIT_S}S", defaultReward=0.25, rewardAggregation="earliest"
    )
    policy_id, learned0 = _learned(server)
    with server.client() as c:
        rewarded = _rank(c)
        twice = _rank(c, "y")
        silent = _rank(c, "z")
        deferred_rewarded = _rank(c, deferActivation=True)
        activated_rewarded = _rank(c, "y", deferActivation=True)
        activated_silent = _rank(c, "z", deferActivation=True)
        reward_then_activate = _rank(c, deferActivation=True)
        late = _rank(c, "y")
        assert c.post(f"/events/{rewarded}/reward", json={"value": 1}).status_code == 204
        assert c.post(f"/events/{twice}/reward", json={"value": 0.5}).status_code == 204
        assert c.post(f"/events/{twice}/reward", json={"value": 0.9}).status_code == 204
        assert c.post(f"/events/{deferred_rewarded}/reward", json={"value": 1}).status_code == 204
        assert c.post(f"/events/{activated_rewarded}/activate").status_code == 204
        assert (
            c.post(f"/events/{activated_rewarded}/reward", json={"value": 0.75}).status_code == 204
        )
        assert c.post(f"/events/{activated_silent}/activate").status_code == 204
        assert (
            c.post(f"/events/{reward_then_activate}/reward", json={"value": 0.5}).status_code == 204
        )

        # earliest: final at the first reward, without waiting for the wait time (each is final
        # at its own reward: a learner step may join one before the next reward arrives)
        first = (rewarded, twice, activated_rewarded)
        _wait_until(lambda: all(_joined(db, e) is not None for e in first), timeout=WAIT_S - 1)
        assert _joined(db, rewarded) == (1.0, True, "reward")
        assert _joined(db, twice) == (0.5, True, "reward")
        assert _joined(db, activated_rewarded) == (0.75, True, "reward")
        # a deferred event with a reward is not final before its activation
        assert _joined(db, reward_then_activate) is None
        assert c.post(f"/events/{reward_then_activate}/activate").status_code == 204
        _wait_until(lambda: _joined(db, reward_then_activate) is not None, timeout=WAIT_S - 1)
        assert _joined(db, reward_then_activate) == (0.5, True, "reward")

        # after the wait time: default reward; never-activated events are final but not learned
        _wait_until(lambda: _joined(db, late) is not None)
        assert c.post(f"/events/{late}/reward", json={"value": 1}).status_code == 204
    _wait_until(lambda: all(_joined(db, e) for e in (silent, deferred_rewarded, activated_silent)))
    assert _joined(db, silent) == (0.25, True, "default")
    assert _joined(db, deferred_rewarded) == (0.25, False, "not-activated")
    assert _joined(db, activated_silent) == (0.25, True, "default")
    assert _joined(db, late) == (0.25, True, "default")  # the late reward is kept, not used
    late_rewards = db.execute("SELECT count(*) FROM rewards WHERE event_id = %s", (late,))
    assert late_rewards.fetchone()[0] == 1

    _wait_until(lambda: _learned(server) == (policy_id, learned0 + 7))
    _assert_serves_offline_model(server, db)


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("sum", 1.0), ("average", 0.5), ("median", 0.5), ("min", 0.0), ("max", 1.0)],
)
def test_aggregations_wait_for_the_wait_time(
    server: Server, db, aggregation: str, expected: float
) -> None:
    server.configure(rewardWaitTime=f"PT{WAIT_S}S", rewardAggregation=aggregation)
    policy_id, learned0 = _learned(server)  # earlier probes are never learned: no need to settle
    with server.client() as c:
        event_id = _rank(c)
        for value in (0.0, 0.5, 1.0) if aggregation != "sum" else (0.25, 0.75):
            assert c.post(f"/events/{event_id}/reward", json={"value": value}).status_code == 204
        time.sleep(1)
        assert _joined(db, event_id) is None  # not final before the wait time closes
    _wait_until(lambda: _joined(db, event_id) is not None)
    assert _joined(db, event_id) == (pytest.approx(expected), True, "reward")
    _wait_until(lambda: _learned(server) == (policy_id, learned0 + 1))
    _assert_serves_offline_model(server, db)


def test_learning_modes(server: Server, db) -> None:
    server.configure(rewardWaitTime=f"PT{WAIT_S}S", rewardAggregation="earliest")
    server.configure(learningMode="Apprentice")
    _settle(db)
    with server.admin() as admin:  # a fresh model that learns fast enough for 40 events
        fast = {"name": "fast", "arguments": DEFAULT_ARGUMENTS.replace("-l 0.001", "-l 0.05")}
        assert admin.put("/configurations/policy", json=fast).status_code == 200
    policy_id, learned0 = _learned(server)
    with server.client() as c:
        events = []
        for i in range(40):
            event_id = f"apprentice-{uuid.uuid4()}"
            body = {
                "contextFeatures": [{"user": {"segment": "xyz"[i % 3]}}],
                "actions": ACTIONS,
                "excludedActions": ["a0"],
                "eventId": event_id,
            }
            answer = c.post("/rank", json=body).json()
            assert answer["rewardActionId"] == "a1"  # the first non-excluded action
            assert answer["ranking"][0]["id"] == "a1"
            assert c.post(f"/events/{event_id}/reward", json={"value": 0.0}).status_code == 204
            events.append(event_id)
    rows = db.execute(
        "SELECT reward_action, probability, policy_action FROM decisions WHERE event_id = ANY(%s)",
        (events,),
    ).fetchall()
    assert {(r[0], r[1]) for r in rows} == {(1, 1.0)}
    assert {r[2] for r in rows} - {1}, "the policy's own draws are logged, not only the baseline"
    _wait_until(lambda: _learned(server) == (policy_id, learned0 + 40))
    _assert_serves_offline_model(server, db, ranks=False)  # ranks serve the baseline
    # imitation: the policy learned that the baseline is what to do
    with server.client() as c:
        answer = c.post(
            "/rank",
            json={"contextFeatures": PROBES[0], "actions": ACTIONS, "excludedActions": ["a0"]},
        ).json()
    probabilities = {r["id"]: r["probability"] for r in answer["ranking"]}
    assert probabilities["a1"] == max(probabilities.values()) > 1 / 3

    server.configure(learningMode="LoggingOnly")
    _settle(db)
    policy_id, learned1 = _learned(server)
    with server.client() as c:
        for _ in range(10):
            event_id = _rank(c)
            answer = db.execute(
                "SELECT ranking->0->>'id', learning_mode FROM decisions WHERE event_id = %s",
                (event_id,),
            ).fetchone()
            assert answer == ("a0", "LoggingOnly")
            assert c.post(f"/events/{event_id}/reward", json={"value": 1}).status_code == 204
    _wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) FROM joined j JOIN decisions d USING (event_id)"
                " WHERE d.learning_mode = 'LoggingOnly'"
            ).fetchone()[0]
            == 10
        )
    )
    time.sleep(0.5)
    assert _learned(server) == (policy_id, learned1)  # logged and joined, nothing learned
    _assert_serves_offline_model(server, db, ranks=False)
    server.configure(learningMode="Online")
