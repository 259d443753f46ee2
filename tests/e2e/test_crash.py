"""Crash recovery under load: the server is killed with SIGKILL several times, at random
moments, while concurrent rank and reward traffic runs, and restarted on the same database.

Once every event is final and the learner has caught up:
- nothing acknowledged is lost: every 201 has its decision row, every 204 its reward row;
- every decision is joined exactly once;
- the serving model learned every learnable final event after its policy's start exactly once;
- it serves the model an uninterrupted run would have: GET model is exactly (every weight) a
  model trained offline on the same joined events in `seq` order, and ranks with its pmf, also
  after one more kill -9 once everything is final (newest snapshot + replay of the joined
  events after it);
- a challenger learning in shadow recorded one score for every Online event it learned, each
  equal to what an uninterrupted offline run scores before learning that event, and its newest
  snapshot is exactly the offline model (a challenger's model is not served over HTTP).

The probes are deferred rank calls that are never activated, so they are final but never
learned and do not move the model they check.
"""

from __future__ import annotations

import functools
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from policies.features import Action
from policies.ranking import eligible_indices
from policies.vw import Policy
from tests.conftest import ADMIN_KEY, Server, scalar, wait_until
from tests.offline import offline_model, served_model, snapshot_model, wait_same_model

SEED = 20240611
WORKERS = 8
KILLS = 4
MAX_EVENTS_PER_WORKER = 3000
WAIT_S = 5
ACTIONS = [{"id": f"a{i}", "features": [{"kind": f"k{i}"}]} for i in range(5)]
CONTEXTS = [[{"user": {"segment": s}}, {"device": {"type": d}}] for s in "xyz" for d in "md"]
BEST = {("x", "m"): "a1", ("x", "d"): "a2", ("y", "m"): "a3", ("y", "d"): "a0", ("z", "m"): "a4"}
CHALLENGER = "--cb_explore_adf --epsilon 0.2 -l 0.1 --cb_type ips -q ::"
PROBES = [(c, excluded) for c in CONTEXTS for excluded in ([], ["a1"], ["a3"], ["a0", "a4"])]


def _reward(context: list[dict], action_id: str) -> float:
    key = (context[0]["user"]["segment"], context[1]["device"]["type"])
    if BEST.get(key, "a2") == action_id:
        return 1.0
    return 0.2 if action_id in ("a0", "a4") else 0.0


@dataclass
class Traffic:
    """What the clients sent and what the server acknowledged (shared by the worker threads)."""

    ranked: set[str] = field(default_factory=set)  # eventIds answered 201
    rewards_sent: Counter[str] = field(default_factory=Counter)  # attempts that may have landed
    rewards_ok: Counter[str] = field(default_factory=Counter)  # 204s per eventId
    transport_errors: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)  # calls cut after they were sent, retried
    unexpected: list[str] = field(default_factory=list)  # any answer but 201/204, any crash
    lock: threading.Lock = field(default_factory=threading.Lock)


def _call(
    client: httpx.Client, path: str, body: dict, expected: int, traffic: Traffic, deadline: float
) -> tuple[httpx.Response | None, int]:
    """POST until answered (connection errors are retried: the server may be down). Returns
    the response if its status is `expected` (else records it and returns None), and how many
    attempts may have reached the server (all but those whose connection was refused)."""
    sent = 0
    for _ in range(2000):
        if time.monotonic() > deadline:
            break
        try:
            answer = client.post(path, json=body)
        except httpx.ConnectError:
            with traffic.lock:
                traffic.transport_errors["ConnectError"] += 1
            time.sleep(0.05)
            continue
        except httpx.TransportError as exc:  # the request may have been written, then cut
            sent += 1
            with traffic.lock:
                traffic.transport_errors[type(exc).__name__] += 1
                traffic.cut[path.split("/")[-1]] += 1
            time.sleep(0.05)
            continue
        sent += 1
        if answer.status_code == expected:
            return answer, sent
        with traffic.lock:
            traffic.unexpected.append(f"{path}: {answer.status_code} {answer.text[:300]}")
        break
    return None, sent


def _worker(server: Server, worker: int, stop: threading.Event, traffic: Traffic, deadline: float):
    rng = random.Random(SEED * 100 + worker)
    try:
        with server.client() as client:
            client.timeout = httpx.Timeout(10.0)
            for i in range(MAX_EVENTS_PER_WORKER):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                event_id = f"crash-{worker}-{i}"
                context = rng.choice(CONTEXTS)
                body = {"contextFeatures": context, "actions": ACTIONS, "eventId": event_id}
                answer, _ = _call(client, "/rank", body, 201, traffic, deadline)
                if answer is None:
                    continue
                with traffic.lock:
                    traffic.ranked.add(event_id)
                chosen = answer.json()["rewardActionId"]
                n_rewards = rng.choices((0, 1, 2), weights=(2, 6, 2))[0]
                for k in range(n_rewards):
                    value = _reward(context, chosen) if k == 0 else 0.5
                    path = f"/events/{event_id}/reward"
                    answer, sent = _call(client, path, {"value": value}, 204, traffic, deadline)
                    with traffic.lock:
                        traffic.rewards_sent[event_id] += sent
                        traffic.rewards_ok[event_id] += answer is not None
    except Exception as exc:  # a crash of the client itself must fail the test
        with traffic.lock:
            traffic.unexpected.append(f"worker {worker} crashed: {exc!r}")


def _health(server: Server) -> dict:
    return httpx.get(f"{server.url}/healthz", timeout=10).json()


def _expected_pmf(offline: Policy, context: list[dict], excluded: list[str]) -> dict[str, float]:
    actions = [Action(a["id"], a["features"]) for a in ACTIONS]
    eligible = eligible_indices(actions, set(excluded))
    pmf = {a.id: 0.0 for a in actions}
    for i, p in zip(eligible, offline.pmf(context, [actions[i] for i in eligible]), strict=True):
        pmf[actions[i].id] = p
    return pmf


def _assert_serves(server: Server, offline: Policy, when: str) -> None:
    with server.client() as client:
        for context, excluded in PROBES:
            body = {
                "contextFeatures": context,
                "actions": ACTIONS,
                "excludedActions": excluded,
                "eventId": f"probe-{uuid.uuid4()}",
                "deferActivation": True,  # never activated: final, never learned
            }
            answer = client.post("/rank", json=body)
            assert answer.status_code == 201, answer.text
            served = {r["id"]: r["probability"] for r in answer.json()["ranking"]}
            expected = _expected_pmf(offline, context, excluded)
            assert served == pytest.approx(expected, abs=1e-6), (when, context, excluded)


def _learnable_after_start(db, policy_id: int) -> int:
    return scalar(
        db,
        "SELECT count(*) FROM joined WHERE learn"
        " AND seq > (SELECT start_seq FROM policies WHERE id = %s)",
        policy_id,
    )


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_and_learns_once(server: Server, db) -> None:
    config = server.configure(
        rewardWaitTime=f"PT{WAIT_S}S",
        rewardAggregation="earliest",
        modelExportFrequency="PT1S",
    )
    policy_id = _health(server)["policyId"]
    added = httpx.post(
        f"{server.url}/admin/policies",
        headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY},
        json={"name": "shadow", "arguments": CHALLENGER},
    )
    assert added.status_code == 201, added.text
    challenger_id = scalar(db, "SELECT id FROM policies WHERE name = 'shadow'")

    # -- traffic, with kill -9 at random moments ----------------------------------------------
    traffic = Traffic()
    stop = threading.Event()
    deadline = time.monotonic() + 60
    threads = [
        threading.Thread(target=_worker, args=(server, w, stop, traffic, deadline), daemon=True)
        for w in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    rng = random.Random(SEED)
    kills: list[dict[str, int | str]] = []
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.2, 3.0))
            server.stop(signal.SIGKILL)
            at_kill = {
                "max_seq": scalar(db, "SELECT coalesce(max(seq), 0) FROM joined"),
                "snapshot_cursor": scalar(
                    db,
                    "SELECT coalesce(max(cursor), -1) FROM snapshots WHERE policy_id = %s",
                    policy_id,
                ),
                "decisions": scalar(db, "SELECT count(*) FROM decisions"),
            }
            time.sleep(rng.uniform(0.0, 0.5))
            server.start()
            health = _health(server)
            at_kill["position_after_start"] = health["position"]
            at_kill["role_after_start"] = health.get("role", "-")
            kills.append(at_kill)
            # the model learns every joined event before it serves
            assert health["policyId"] == policy_id
            assert health["position"] >= at_kill["max_seq"], kills
        time.sleep(rng.uniform(1.0, 2.0))  # traffic against the last restarted server
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a traffic thread did not stop"
    summary = (
        f"ranked={len(traffic.ranked)} rewards_ok={sum(traffic.rewards_ok.values())}"
        f" rewards_sent={sum(traffic.rewards_sent.values())}"
        f" transport_errors={dict(traffic.transport_errors)} cut={dict(traffic.cut)}"
        f" kills={kills}"
    )
    print(summary)  # shown with -s or on failure
    assert not traffic.unexpected, f"{traffic.unexpected[:10]}\n{summary}\n{server.log()[-5000:]}"
    assert len(kills) == KILLS
    assert len(traffic.ranked) > 200, summary
    assert sum(traffic.transport_errors.values()) > 0, "the kills should have cut some calls"
    assert any(k["snapshot_cursor"] > 0 for k in kills), f"no snapshot between kills: {summary}"

    # -- everything final, learner caught up ---------------------------------------------------
    wait_until(lambda: scalar(db, "SELECT count(*) FROM pending") == 0, WAIT_S * 4, "pending empty")
    max_seq = scalar(db, "SELECT max(seq) FROM joined")
    wait_until(lambda: _health(server)["position"] == max_seq, 15, "learner caught up")

    # -- nothing acknowledged is lost ----------------------------------------------------------
    ranked = sorted(traffic.ranked)
    stored = {
        r[0]
        for r in db.execute(
            "SELECT event_id FROM decisions WHERE event_id = ANY(%s)", (ranked,)
        ).fetchall()
    }
    missing = set(ranked) - stored
    assert not missing, f"{len(missing)} acknowledged ranks lost: {sorted(missing)[:10]}"
    stored_rewards = Counter(
        dict(db.execute("SELECT event_id, count(*) FROM rewards GROUP BY event_id").fetchall())
    )
    lost = {
        e: (n, stored_rewards[e]) for e, n in traffic.rewards_ok.items() if stored_rewards[e] < n
    }
    assert not lost, f"acknowledged rewards lost (204s, rows): {list(lost.items())[:10]}"
    extra = {e: n for e, n in stored_rewards.items() if n > traffic.rewards_sent[e]}
    assert not extra, f"more reward rows than sent: {list(extra.items())[:10]}"
    assert sum(stored_rewards.values()) <= sum(traffic.rewards_sent.values())

    # -- every decision joined exactly once ----------------------------------------------------
    n_decisions = scalar(db, "SELECT count(*) FROM decisions")
    assert scalar(db, "SELECT count(*) FROM joined") == n_decisions
    assert scalar(db, "SELECT count(DISTINCT event_id) FROM joined") == n_decisions
    assert (
        scalar(
            db,
            "SELECT count(*) FROM decisions d LEFT JOIN joined j USING (event_id)"
            " WHERE j.event_id IS NULL",
        )
        == 0
    )
    # no reward stored for the event: the default reward
    assert (
        scalar(
            db,
            "SELECT count(*) FROM joined j WHERE reason = 'reward'"
            " AND NOT EXISTS (SELECT 1 FROM rewards r WHERE r.event_id = j.event_id)",
        )
        == 0
    )

    # -- every final event learned exactly once ------------------------------------------------
    health = _health(server)
    assert health["policyId"] == policy_id
    learnable = _learnable_after_start(db, policy_id)
    assert health["eventsLearned"] == learnable, (health, learnable, summary)

    # -- the recovered model is the uninterrupted one ------------------------------------------
    with server.admin() as admin:
        arguments = admin.get("/configurations/policy").json()["arguments"]
    exploration = config["explorationPercentage"]
    learned: list[int] = []
    offline = offline_model(db, policy_id, arguments, exploration, learned=learned)
    assert len(learned) == learnable
    _assert_serves(server, offline, "after the kills")
    served = functools.partial(served_model, server, arguments, exploration)
    wait_same_model(served, offline, learned, "the model served after the kills")
    tops = {max(_expected_pmf(offline, c, []).items(), key=lambda kv: kv[1])[0] for c in CONTEXTS}
    assert len(tops) > 1, "the model should prefer different actions in different contexts"

    # -- one more kill -9 once everything is final: snapshot + replay, same model --------------
    server.stop(signal.SIGKILL)
    server.start()
    after = _health(server)
    assert after["policyId"] == policy_id
    assert after["position"] >= max_seq
    assert after["eventsLearned"] == learnable == _learnable_after_start(db, policy_id)
    _assert_serves(server, offline, "after the final kill")
    wait_same_model(served, offline, learned, "the model served after the final kill")

    # -- the challenger scored every event it learned once, as an uninterrupted run would ------
    wait_until(
        lambda: (
            scalar(db, "SELECT count(*) FROM policy_scores WHERE policy_id = %s", challenger_id)
            >= _learnable_after_start(db, challenger_id)
        ),
        15,
        "challenger's scores saved",
    )
    recorded = dict(
        db.execute(
            "SELECT seq, probability FROM policy_scores WHERE policy_id = %s", (challenger_id,)
        ).fetchall()
    )
    expected: dict[int, float] = {}
    shadow_learned: list[int] = []
    shadow = offline_model(db, challenger_id, CHALLENGER, exploration, expected, shadow_learned)
    assert len(expected) == _learnable_after_start(db, challenger_id) > 200
    assert recorded.keys() == expected.keys()
    assert recorded == pytest.approx(expected, abs=1e-6)
    wait_same_model(
        lambda: snapshot_model(db, challenger_id, CHALLENGER, exploration),
        shadow,
        shadow_learned,
        "the challenger's newest snapshot",
    )
