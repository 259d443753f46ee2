"""Auto-optimization: with `isAutoOptimizationEnabled`, the learner runs an Auto evaluation with
policy optimization on its schedule and applies the optimal policy through the promotion gate.

The champion here has no interactions, so it cannot learn that the best action depends on the
user (an additive model can only find the best action overall); the optimization finds
interactions (`-q`), and the gate, with thresholds this small traffic can meet, promotes them;
the audit row says so."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.conftest import ADMIN_KEY, Server

STUCK = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -l 0.5"  # no interactions
ACTIONS = [{"id": f"a{i}", "features": [{"kind": f"k{i}"}]} for i in range(4)]
BEST = {"x": "a1", "y": "a2", "z": "a3"}
EVENTS = 1000


CLIENTS = 4


def _traffic(server: Server, client_index: int) -> None:
    rng = random.Random(11 * 10 + client_index)
    with server.client() as client:
        for i in range(client_index, EVENTS, CLIENTS):
            user = rng.choice("xyz")
            body = {"contextFeatures": [{"user": {"t": user}}], "actions": ACTIONS,
                    "eventId": f"auto-{i}"}  # fmt: skip
            chosen = client.post("/rank", json=body).json()["rewardActionId"]
            click = rng.random() < (0.9 if chosen == BEST[user] else 0.1)
            reward = client.post(f"/events/auto-{i}/reward", json={"value": float(click)})
            assert reward.status_code == 204, reward.text


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    env = {"DS_PROMOTION_MIN_EVENTS": "500", "DS_PROMOTION_MIN_ESS": "50"}
    srv = Server(database_url, tmp_path_factory.mktemp("auto"), env=env).start()
    yield srv
    srv.stop()


def test_auto_optimization_promotes_through_the_gate(server: Server, database_url: str) -> None:
    with server.admin() as admin:
        put = admin.put("/configurations/policy", json={"name": "stuck", "arguments": STUCK})
        assert put.status_code == 200, put.text
    with ThreadPoolExecutor(CLIENTS) as pool:
        for done in [pool.submit(_traffic, server, c) for c in range(CLIENTS)]:
            done.result()
    with psycopg.connect(database_url, autocommit=True) as db:
        deadline = time.monotonic() + 30
        while db.execute("SELECT count(*) FROM joined").fetchone()[0] < EVENTS:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        start = (datetime.now(UTC) - timedelta(days=1)).replace(tzinfo=None).isoformat()
        server.configure(
            isAutoOptimizationEnabled=True,
            autoOptimizationFrequency="P1D",
            autoOptimizationStartDate=start,
        )
        deadline = time.monotonic() + 180
        while True:
            row = db.execute(
                "SELECT id, status, error FROM evaluations WHERE evaluation_type = 'Auto'"
            ).fetchone()
            if row and row[1] != "Running":
                break
            assert time.monotonic() < deadline, "the Auto evaluation did not finish"
            time.sleep(0.5)
        assert row[1] == "Succeeded", row
        evaluation_id = row[0]
        deadline = time.monotonic() + 30
        while not (
            audit := db.execute(
                "SELECT action, source, forced, evaluation_id, policy_name, evidence"
                " FROM promotions WHERE source = 'auto'"
            ).fetchall()
        ):
            assert time.monotonic() < deadline, "no audit row for the auto-optimization"
            time.sleep(0.2)
    assert len(audit) == 1
    action, source, forced, audited_evaluation, name, evidence = audit[0]
    print(evidence["evidence"])  # shown with -s or on failure
    assert (action, source, forced, audited_evaluation) == (
        "promote",
        "auto",
        False,
        evaluation_id,
    ), evidence
    assert evidence["promote"] is True and evidence["evidence"]["lowerBound"] > 0
    with server.admin() as admin:
        policy = admin.get("/configurations/policy").json()
        report = admin.get(f"/evaluations/{evaluation_id}").json()
    assert report["evaluationType"] == "Auto"
    optimized = [
        p for p in report["policyResults"] if p["policySource"] == "OfflineExperimentation"
    ]
    assert len(optimized) == 1 and report["optimalPolicy"] == optimized[0]["name"] == name
    assert policy == {"name": name, "arguments": optimized[0]["arguments"]}
    listed = httpx.get(
        f"{server.url}/admin/policies", headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY}
    ).json()["value"]
    roles = {p["name"]: p["role"] for p in listed}
    assert roles[name] == "champion" and roles["stuck"] == "challenger"
