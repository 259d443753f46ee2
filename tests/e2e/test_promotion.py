"""Challengers in shadow, the promotion gate, rollback, applyFromEvaluation and the audit, end to
end: traffic over HTTP, a real server and database.

The population has a strong signal (three user types, four actions, the type's best action
rewards 1, every other 0). The champion is the default policy (`-l 0.001`, slow to learn it);
`fast` (`-l 0.5`) learns it in a few hundred events; `uniform` (explore-first over a horizon
longer than the test: uniformly random throughout) cannot learn it. The gate's thresholds are
lowered through the environment so 1,500 events are enough evidence.

The tests run in order on one server and build on each other: shadow learning, a refusal,
a promotion, its rollback, a forced promotion, applyFromEvaluation, a kill -9, retirement,
admin errors.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from azure.ai.personalizer import PersonalizerAdministrationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError

from policies.arguments import DEFAULT_ARGUMENTS
from tests.conftest import ADMIN_KEY, API_KEY, Server, scalar, wait_until
from tests.offline import offline_model, served_model, snapshot_model, wait_same_model

SEED = 20250308
WORKERS = 4
TYPES = {"student": "a2", "parent": "a3", "retiree": "a0"}  # user type → its best action
ACTIONS = [{"id": f"a{i}", "features": [{"genre": f"g{i}", "length": i / 4}]} for i in range(4)]
FAST = DEFAULT_ARGUMENTS.replace("-l 0.001", "-l 0.5")
UNIFORM = "--cb_explore_adf --first 1000000 --cb_type mtr -q ::"
SPARE = DEFAULT_ARGUMENTS.replace("-l 0.001", "-l 0.01")
GATE = {"DS_PROMOTION_MIN_EVENTS": "300", "DS_PROMOTION_MIN_ESS": "30"}
ADMIN_HEADERS = {"Ocp-Apim-Subscription-Key": ADMIN_KEY}
KEY_DIGEST = "admin:" + hashlib.sha256(ADMIN_KEY.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's server, with a gate that 1,500 events can pass."""
    srv = Server(database_url, tmp_path_factory.mktemp("server"), env=GATE).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    """A client for the service's own admin API (/admin/…)."""
    with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[PersonalizerAdministrationClient]:
    with PersonalizerAdministrationClient(
        server.url, AzureKeyCredential(ADMIN_KEY), retry_total=0, connection_timeout=30
    ) as client:
        yield client


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _worker(server: Server, prefix: str, worker: int, count: int, errors: list[str]) -> None:
    rng = random.Random(f"{SEED}-{prefix}-{worker}")
    try:
        with server.client() as client:
            for i in range(count):
                event_id = f"{prefix}-{worker}-{i}"
                user = rng.choice(list(TYPES))
                body = {
                    "contextFeatures": [{"user": {"type": user}}, {"device": rng.choice("md")}],
                    "actions": ACTIONS,
                    "eventId": event_id,
                }
                answer = client.post("/rank", json=body)
                if answer.status_code != 201:
                    errors.append(f"rank: {answer.status_code} {answer.text[:300]}")
                    continue
                value = float(answer.json()["rewardActionId"] == TYPES[user])
                answer = client.post(f"/events/{event_id}/reward", json={"value": value})
                if answer.status_code != 204:
                    errors.append(f"reward: {answer.status_code} {answer.text[:300]}")
    except Exception as exc:  # a crash of the client itself must fail the test
        errors.append(f"worker {worker} crashed: {exc!r}")


def send_traffic(server: Server, db, prefix: str, per_worker: int) -> list[str]:
    """Rank + reward `per_worker` events on each of WORKERS threads; waits until all are final.
    Returns their eventIds."""
    errors: list[str] = []
    threads = [
        threading.Thread(target=_worker, args=(server, prefix, w, per_worker, errors), daemon=True)
        for w in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a traffic thread did not finish"
    assert not errors, errors[:10]
    decisions = scalar(db, "SELECT count(*) FROM decisions")
    wait_until(
        lambda: scalar(db, "SELECT count(*) FROM joined") == decisions, 30, "every event final"
    )
    return [f"{prefix}-{w}-{i}" for w in range(WORKERS) for i in range(per_worker)]


def policy_ids(db) -> dict[str, int]:
    """Active and retired policies by name (the newest row of a name)."""
    return dict(db.execute("SELECT name, max(id) FROM policies GROUP BY name").fetchall())


def learnable_seqs(db, policy_id: int) -> set[int]:
    """The final events a policy must score: Online, learned, joined after its start."""
    rows = db.execute(
        "SELECT j.seq FROM joined j JOIN decisions d USING (event_id)"
        " WHERE j.learn AND d.learning_mode = 'Online'"
        " AND j.seq > (SELECT start_seq FROM policies WHERE id = %s)",
        (policy_id,),
    )
    return {r[0] for r in rows}


def scored_seqs(db, policy_id: int) -> list[int]:
    rows = db.execute("SELECT seq FROM policy_scores WHERE policy_id = %s", (policy_id,))
    return [r[0] for r in rows]


def active_ids(db) -> list[int]:
    rows = db.execute("SELECT id FROM policies WHERE role IN ('champion', 'challenger')")
    return [r[0] for r in rows]


def wait_scored_exactly_once(db, timeout: float = 30) -> None:
    """Every active policy's saved scores are exactly the events it must score: each once (the
    primary key), none missing, none extra."""

    def complete() -> bool:
        return all(set(scored_seqs(db, p)) == learnable_seqs(db, p) for p in active_ids(db))

    deadline = time.monotonic() + timeout
    while not complete() and time.monotonic() < deadline:
        time.sleep(0.3)
    for policy_id in active_ids(db):
        scored, expected = scored_seqs(db, policy_id), learnable_seqs(db, policy_id)
        assert len(scored) == len(set(scored)), f"policy {policy_id} scored an event twice"
        assert set(scored) == expected, (
            f"policy {policy_id}: missing {sorted(expected - set(scored))[:10]}, "
            f"extra {sorted(set(scored) - expected)[:10]}"
        )


def paired_evidence(db, challenger: int, champion: int) -> dict[str, float]:
    """The gate's evidence computed here from the rows: per event r·π/p for both policies."""
    rows = np.array(
        db.execute(
            "SELECT j.reward, d.probability, c.probability, h.probability"
            " FROM policy_scores c JOIN policy_scores h ON h.seq = c.seq"
            " JOIN joined j ON j.seq = c.seq JOIN decisions d USING (event_id)"
            " WHERE c.policy_id = %s AND h.policy_id = %s",
            (challenger, champion),
        ).fetchall(),
        dtype=float,
    ).reshape(-1, 4)
    reward, pscore, ours, theirs = rows.T
    weights = ours / pscore
    d = reward * weights - reward * theirs / pscore
    z = statistics.NormalDist().inv_cdf(0.975)
    return {
        "events": len(d),
        "challengerValue": float(np.mean(reward * weights)),
        "championValue": float(np.mean(reward * theirs / pscore)),
        "difference": float(d.mean()),
        "lowerBound": float(d.mean() - z * d.std(ddof=1) / math.sqrt(len(d))),
        "effectiveSampleSize": float(weights.sum() ** 2 / (weights**2).sum()),
        "maxWeight": float(weights.max()),
    }


def assert_evidence(answer: dict[str, Any], expected: dict[str, float]) -> None:
    evidence = answer["evidence"]
    assert evidence["events"] == expected["events"]
    for key, value in expected.items():
        assert evidence[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert answer["rules"] == {"minEvents": 300, "minLift": 0.0, "minEss": 30.0, "alpha": 0.05}


def views(admin: httpx.Client) -> list[dict[str, Any]]:
    answer = admin.get("/admin/policies")
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def view_of(admin: httpx.Client, name: str) -> dict[str, Any]:
    return next(v for v in views(admin) if v["name"] == name)


def champion_served(server: Server, db, prefix: str) -> set[tuple[int, str]]:
    """(policy_id, policy_name) of a few new decisions, and the configured policy agrees."""
    send_traffic(server, db, prefix, 5)
    rows = db.execute(
        "SELECT DISTINCT policy_id, policy_name FROM decisions WHERE event_id LIKE %s",
        (f"{prefix}-%",),
    ).fetchall()
    return {(r[0], r[1]) for r in rows}


def configured_policy(server: Server) -> dict[str, str]:
    with server.admin() as admin:
        return admin.get("/configurations/policy").json()


def audit_rows(db) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT action, forced, source, key_id, policy_name, evaluation_id"
        " FROM promotions ORDER BY id"
    ).fetchall()


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shadow(server: Server, admin: httpx.Client, database_url: str) -> dict[str, int]:
    """Three challengers added before 1,500 events of traffic; every score saved."""
    server.configure(modelExportFrequency="PT1S")  # no reward setting: the champion stays
    for name, arguments in (("fast", FAST), ("uniform", UNIFORM), ("spare", SPARE)):
        answer = admin.post("/admin/policies", json={"name": name, "arguments": arguments})
        assert answer.status_code == 201, answer.text
        created = answer.json()
        assert (created["name"], created["role"], created["arguments"]) == (
            name,
            "challenger",
            arguments,
        )
        assert created["eventsLearned"] == 0 and created["estimates"] is None
        assert datetime.fromisoformat(created["createdAt"]) <= datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as db:
        send_traffic(server, db, "shadow", 375)
        wait_scored_exactly_once(db)
        return policy_ids(db)


def test_challengers_learn_in_shadow_exactly_once(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    listed = views(admin)
    assert [(v["name"], v["role"]) for v in listed] == [
        ("default", "champion"),
        ("spare", "challenger"),
        ("uniform", "challenger"),
        ("fast", "challenger"),
    ]
    assert configured_policy(server) == {"name": "default", "arguments": DEFAULT_ARGUMENTS}
    champion = shadow["default"]
    for view in listed:
        policy_id = shadow[view["name"]]
        scored = len(scored_seqs(db, policy_id))
        assert scored >= 1500
        assert view["eventsLearned"] == scored, view
        assert view["modelVersion"] == f"{policy_id}.{scored}"
        estimates = view["estimates"]
        assert estimates["events"] == scored
        if view["role"] == "champion":
            assert "differenceFromChampion" not in estimates
            continue
        expected = paired_evidence(db, policy_id, champion)
        assert estimates["ips"]["value"] == pytest.approx(expected["challengerValue"], rel=1e-9)
        assert estimates["effectiveSampleSize"] == pytest.approx(
            expected["effectiveSampleSize"], rel=1e-9
        )
        difference = estimates["differenceFromChampion"]
        assert difference["events"] == expected["events"] == scored
        assert difference["value"] == pytest.approx(expected["difference"], rel=1e-9)
    # each model is exactly its offline replay: the champion's as GET model serves it, a
    # challenger's as its newest snapshot (no HTTP call serves a challenger's model)
    with server.admin() as personalizer:
        exploration = personalizer.get("/configurations/service").json()["explorationPercentage"]
    for view in listed:
        policy_id, arguments = shadow[view["name"]], view["arguments"]
        learned: list[int] = []
        offline = offline_model(db, policy_id, arguments, exploration, learned=learned)
        if view["role"] == "champion":
            fetch = functools.partial(served_model, server, arguments, exploration)
        else:
            fetch = functools.partial(snapshot_model, db, policy_id, arguments, exploration)
        wait_same_model(fetch, offline, learned, f"the model of {view['role']} {view['name']}")
    fast, uniform = view_of(admin, "fast"), view_of(admin, "uniform")
    assert fast["estimates"]["differenceFromChampion"]["lower"] > 0
    assert uniform["estimates"]["differenceFromChampion"]["upper"] < 0

    # nothing was promoted yet: nothing to roll back, and the champion cannot be retired
    answer = admin.post("/admin/policies/rollback")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["innerError"]["code"] == "NothingToRollBack"
    answer = admin.delete("/admin/policies/default")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["innerError"]["code"] == "PolicyIsChampion"


def test_worse_challenger_is_refused_with_evidence(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    expected = paired_evidence(db, shadow["uniform"], shadow["default"])
    answer = admin.post("/admin/policies/uniform/promote")
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["error"]["code"] == "Conflict"
    assert body["error"]["innerError"]["code"] == "PromotionRefused"
    assert (body["promoted"], body["forced"], body["promote"]) == (False, False, False)
    assert body["reasons"] and any("lower bound" in r for r in body["reasons"])
    assert body["evidence"]["lowerBound"] <= 0
    assert_evidence(body, expected)
    assert configured_policy(server)["name"] == "default"
    assert view_of(admin, "uniform")["role"] == "challenger"
    assert audit_rows(db)[-1] == ("refuse", False, "admin", KEY_DIGEST, "uniform", None)


def test_better_challenger_is_promoted_then_rolled_back(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    expected = paired_evidence(db, shadow["fast"], shadow["default"])
    answer = admin.post("/admin/policies/fast/promote", json={})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["promoted"], body["forced"], body["promote"]) == (True, False, True)
    assert body["evidence"]["lowerBound"] > 0
    assert body["evidence"]["effectiveSampleSize"] >= 30
    assert_evidence(body, expected)

    # the promoted challenger serves the model it trained in shadow
    assert configured_policy(server) == {"name": "fast", "arguments": FAST}
    roles = [(v["name"], v["role"]) for v in views(admin)]
    assert roles[0] == ("fast", "champion")
    assert ("default", "challenger") in roles
    assert champion_served(server, db, "after-promote") == {(shadow["fast"], "fast")}
    # the view is as of the newest snapshot: the events just sent show once it is saved
    deadline = time.monotonic() + 15
    while view_of(admin, "fast")["eventsLearned"] <= 1500:
        assert time.monotonic() < deadline, view_of(admin, "fast")
        time.sleep(0.2)

    answer = admin.post("/admin/policies/rollback")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"champion": "default", "replaced": "fast"}
    assert configured_policy(server) == {"name": "default", "arguments": DEFAULT_ARGUMENTS}
    assert champion_served(server, db, "after-rollback") == {(shadow["default"], "default")}
    assert audit_rows(db)[-2:] == [
        ("promote", False, "admin", KEY_DIGEST, "fast", None),
        ("rollback", False, "admin", KEY_DIGEST, "default", None),
    ]
    # both kept learning in shadow through the swaps, each event once
    wait_scored_exactly_once(db)


def test_forced_promotion_is_audited_as_forced(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    answer = admin.post("/admin/policies/uniform/promote", json={"force": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["promoted"], body["forced"], body["promote"]) == (True, True, False)
    assert body["evidence"]["lowerBound"] <= 0
    assert configured_policy(server) == {"name": "uniform", "arguments": UNIFORM}
    assert champion_served(server, db, "after-force") == {(shadow["uniform"], "uniform")}
    assert audit_rows(db)[-1] == ("promote", True, "admin", KEY_DIGEST, "uniform", None)

    answer = admin.post("/admin/policies/rollback")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"champion": "default", "replaced": "uniform"}
    assert configured_policy(server)["name"] == "default"

    answer = admin.post("/admin/policies/uniform/promote", json={"force": "yes"})
    assert answer.status_code == 400, answer.text

    # a rollback undoes a promotion once: a second one would re-promote without the gate
    answer = admin.post("/admin/policies/rollback")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["innerError"]["code"] == "NothingToRollBack"
    assert configured_policy(server)["name"] == "default"


def test_audit_lists_every_decision_with_key_digests(
    admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    answer = admin.get("/admin/promotions")
    assert answer.status_code == 200, answer.text
    value = answer.json()["value"]
    assert [(r["action"], r["forced"], r["policy"], r["previousChampion"]) for r in value] == [
        ("rollback", False, "default", "uniform"),
        ("promote", True, "uniform", "default"),
        ("rollback", False, "default", "fast"),
        ("promote", False, "fast", "default"),
        ("refuse", False, "uniform", "default"),
    ]
    assert [r["id"] for r in value] == sorted((r["id"] for r in value), reverse=True)
    assert all(r["source"] == "admin" and r["evaluationId"] is None for r in value)
    assert all(r["key"] == KEY_DIGEST for r in value)
    refused = value[-1]["evidence"]
    assert refused["promote"] is False and refused["evidence"]["lowerBound"] <= 0
    assert value[-2]["evidence"]["evidence"]["lowerBound"] > 0
    assert value[0]["evidence"]["revertedAction"] == "promote"
    times = [datetime.fromisoformat(r["at"]) for r in value]
    assert times == sorted(times, reverse=True)
    # the keys themselves are nowhere in the audit
    dump = scalar(db, "SELECT coalesce(string_agg(p::text, ' '), '') FROM promotions p")
    assert ADMIN_KEY not in dump and API_KEY not in dump
    assert ADMIN_KEY not in answer.text


def test_apply_from_evaluation_goes_through_the_gate(
    server: Server,
    admin: httpx.Client,
    sdk: PersonalizerAdministrationClient,
    shadow: dict[str, int],
    db,
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    end = datetime.now(UTC) + timedelta(minutes=1)
    evaluation_id = f"apply-{uuid.uuid4().hex[:8]}"
    sdk.create_evaluation(
        evaluation_id,
        {
            "name": "candidates",
            "startTime": start.isoformat(),
            "endTime": end.isoformat(),
            "policies": [
                {"name": "fast-eval", "arguments": FAST},
                {"name": "uniform-eval", "arguments": UNIFORM},
            ],
        },
    )

    def finished() -> dict[str, Any] | None:
        body = sdk.get_evaluation(evaluation_id, start_time=start, end_time=end)
        return body if body["status"] != "Running" else None

    evaluation = wait_until(finished, 60, "evaluation finished")
    assert evaluation["status"] == "Succeeded", evaluation
    summary = {p["name"]: p["summary"] for p in evaluation["content"]["value"]}
    assert summary["fast-eval"]["difference"]["lower"] > 0, summary["fast-eval"]
    assert summary["uniform-eval"]["difference"]["upper"] < 0, summary["uniform-eval"]

    with pytest.raises(HttpResponseError) as raised:
        sdk.apply_from_evaluation({"evaluationId": evaluation_id, "policyName": "uniform-eval"})
    assert raised.value.status_code == 409
    refused = raised.value.response.json()
    assert refused["error"]["innerError"]["code"] == "PromotionRefused"
    assert refused["promoted"] is False and refused["evidence"]["lowerBound"] <= 0
    assert refused["evidence"]["events"] == summary["uniform-eval"]["events"]
    assert configured_policy(server)["name"] == "default"

    assert (
        sdk.apply_from_evaluation({"evaluationId": evaluation_id, "policyName": "fast-eval"})
        is None
    )
    assert configured_policy(server) == {"name": "fast-eval", "arguments": FAST}
    listed = views(admin)
    assert (listed[0]["name"], listed[0]["role"]) == ("fast-eval", "champion")
    assert view_of(admin, "default")["role"] == "challenger"
    ids = policy_ids(db)
    assert champion_served(server, db, "after-apply") == {(ids["fast-eval"], "fast-eval")}
    assert audit_rows(db)[-2:] == [
        ("refuse", False, "applyFromEvaluation", KEY_DIGEST, "uniform-eval", evaluation_id),
        ("promote", False, "applyFromEvaluation", KEY_DIGEST, "fast-eval", evaluation_id),
    ]
    newest = admin.get("/admin/promotions").json()["value"][0]
    assert (newest["source"], newest["evaluationId"], newest["policy"]) == (
        "applyFromEvaluation",
        evaluation_id,
        "fast-eval",
    )
    assert newest["previousChampion"] == "default"
    assert newest["evidence"]["evidence"]["lowerBound"] > 0

    # the Baseline and Random are references, not policies that can serve
    with pytest.raises(HttpResponseError) as raised:
        sdk.apply_from_evaluation({"evaluationId": evaluation_id, "policyName": "Random"})
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError) as raised:
        sdk.apply_from_evaluation({"evaluationId": "no-such-evaluation", "policyName": "fast"})
    assert raised.value.status_code == 404
    # the evaluation compared its policies with the champion of then: not evidence against now's
    with pytest.raises(HttpResponseError) as raised:
        sdk.apply_from_evaluation({"evaluationId": evaluation_id, "policyName": "fast-eval"})
    assert raised.value.status_code == 409
    assert raised.value.response.json()["error"]["innerError"]["code"] == "ChampionChanged"
    wait_scored_exactly_once(db)


def test_kill_9_keeps_scores_exactly_once(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    """Scores are saved with their policy's snapshot: killed before the next one, the learner
    scores the lost events again after the restart, once."""
    wait_scored_exactly_once(db)
    send_traffic(server, db, "before-kill", 10)
    server.stop(signal.SIGKILL)
    server.start()
    wait_scored_exactly_once(db)
    assert configured_policy(server) == {"name": "fast-eval", "arguments": FAST}
    for view in views(admin):
        if view["role"] != "retired":
            policy_id = policy_ids(db)[view["name"]]
            assert view["eventsLearned"] == len(scored_seqs(db, policy_id)), view


def test_retired_challenger_stops_scoring(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    wait_scored_exactly_once(db)
    spare = shadow["spare"]
    before = sorted(scored_seqs(db, spare))
    assert admin.delete("/admin/policies/spare").status_code == 204
    listed = views(admin)
    assert (listed[-1]["name"], listed[-1]["role"]) == ("spare", "retired")
    assert listed[-1]["estimates"] is None
    assert [v["role"] for v in listed] == sorted(
        (v["role"] for v in listed), key=["champion", "challenger", "retired"].index
    )

    send_traffic(server, db, "after-retire", 10)
    wait_scored_exactly_once(db)
    assert sorted(scored_seqs(db, spare)) == before
    assert len(scored_seqs(db, shadow["fast"])) > len(before)

    for path, status, inner in (
        ("/admin/policies/spare", 404, "PolicyNotFound"),
        ("/admin/policies/no-such-policy", 404, "PolicyNotFound"),
        ("/admin/policies/fast-eval", 409, "PolicyIsChampion"),
    ):
        answer = admin.delete(path)
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["error"]["innerError"]["code"] == inner
    answer = admin.post("/admin/policies/spare/promote", json={"force": True})
    assert answer.status_code == 404, answer.text


def test_admin_policy_errors(server: Server, admin: httpx.Client, shadow: dict[str, int]) -> None:
    cases = [
        ({"name": "fast", "arguments": FAST}, 409, "PolicyNameConflict"),
        ({"name": "fast-eval", "arguments": FAST}, 409, "PolicyNameConflict"),
        ({"name": "bad", "arguments": "--cb_adf --not_an_option"}, 400, "InvalidPolicyConfiguration"),
        ({"name": "bad", "arguments": "--cb_explore_adf -f model.vw"}, 400, "InvalidPolicyConfiguration"),
        ({"name": "bad"}, 400, "InvalidPolicyConfiguration"),
        ({"name": "", "arguments": FAST}, 400, "InvalidPolicyContract"),
        ({"arguments": FAST}, 400, "InvalidPolicyContract"),
        ({"name": "x" * 257, "arguments": FAST}, 400, "InvalidPolicyContract"),
    ]  # fmt: skip
    for body, status, inner in cases:
        answer = admin.post("/admin/policies", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"]["innerError"]["code"] == inner, (body, answer.text)
    with httpx.Client(base_url=server.url, headers={"Ocp-Apim-Subscription-Key": API_KEY}) as c:
        assert c.get("/admin/policies").status_code == 401
        assert c.post("/admin/policies/fast/promote").status_code == 401

    # a retired name may be used again; at most ten challengers learn at once
    answer = admin.post("/admin/policies", json={"name": "spare", "arguments": SPARE})
    assert answer.status_code == 201, answer.text
    challengers = sum(v["role"] == "challenger" for v in views(admin))
    for i in range(10 - challengers):
        answer = admin.post("/admin/policies", json={"name": f"extra-{i}", "arguments": SPARE})
        assert answer.status_code == 201, answer.text
    answer = admin.post("/admin/policies", json={"name": "one-too-many", "arguments": SPARE})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["innerError"]["code"] == "TooManyChallengers"
    assert sum(v["role"] == "challenger" for v in views(admin)) == 10


def test_exploration_change_reaches_every_policy(
    server: Server, admin: httpx.Client, shadow: dict[str, int], db
) -> None:
    """With exploration 0 every policy is greedy: its probability of any logged action is 0 or
    1, the challengers' too (their models are kept, their exploration changes)."""
    changed_at = scalar(db, "SELECT coalesce(max(seq), 0) FROM joined")
    server.configure(explorationPercentage=0.0)
    send_traffic(server, db, "greedy", 10)
    wait_scored_exactly_once(db)
    fast = shadow["fast"]
    scores = [
        p
        for (p,) in db.execute(
            "SELECT probability FROM policy_scores WHERE policy_id = %s AND seq > %s",
            (fast, changed_at),
        ).fetchall()
    ]
    assert len(scores) >= 10 * WORKERS
    assert set(scores) <= {0.0, 1.0}, sorted(set(scores))[:5]
