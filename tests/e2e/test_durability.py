"""Acknowledged means durable: every 201 has its decision row, every 204 its reward row,
and concurrent requests share transactions (group commit)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import Server, rank_body


def _count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_every_acknowledged_call_has_its_row(server: Server, db) -> None:
    before_decisions, before_rewards = _count(db, "decisions"), _count(db, "rewards")

    def rank(i: int) -> tuple[int, str]:
        with server.client() as c:
            r = c.post("/rank", json=rank_body(context=[{"user": {"n": i % 7}}]))
            return r.status_code, r.json()["eventId"]

    with ThreadPoolExecutor(16) as pool:
        ranked = list(pool.map(rank, range(300)))
    assert all(status == 201 for status, _ in ranked)
    event_ids = [e for _, e in ranked]
    assert len(set(event_ids)) == 300
    assert _count(db, "decisions") - before_decisions == 300
    stored = {
        r[0]
        for r in db.execute(
            "SELECT event_id FROM decisions WHERE event_id = ANY(%s)", (event_ids,)
        ).fetchall()
    }
    assert stored == set(event_ids)

    def reward(event_id: str) -> int:
        with server.client() as c:
            return c.post(f"/events/{event_id}/reward", json={"value": 0.5}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(reward, event_ids[:200] + event_ids[:50]))
    assert statuses == [204] * 250
    assert _count(db, "rewards") - before_rewards == 250


def test_concurrent_requests_share_commits(server: Server, db) -> None:
    """Group commit: rows written by one transaction share its xmin; 16 concurrent clients
    need far fewer transactions than requests. Each client keeps its connection and sends its
    25 ranks back to back, so the ranks arrive as fast as the clients can send them."""

    def ranks(_: int) -> list[str]:
        with server.client() as c:
            event_ids = []
            for _ in range(25):
                r = c.post("/rank", json=rank_body())
                assert r.status_code == 201
                event_ids.append(r.json()["eventId"])
            return event_ids

    with ThreadPoolExecutor(16) as pool:
        event_ids = [e for client in pool.map(ranks, range(16)) for e in client]
    assert len(event_ids) == 400
    transactions = db.execute(
        "SELECT count(DISTINCT xmin::text) FROM decisions WHERE event_id = ANY(%s)", (event_ids,)
    ).fetchone()[0]
    assert transactions < 400 * 0.75, transactions


def test_retried_rank_replays_the_logged_decision(server: Server, db) -> None:
    event_id = f"retry-{uuid.uuid4()}"
    body = rank_body(event_id, n_actions=5)
    with server.client() as c:
        first = c.post("/rank", json=body)
        second = c.post("/rank", json=body)
        other = c.post("/rank", json=rank_body(event_id, n_actions=4))
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "Conflict"
    assert (
        db.execute("SELECT count(*) FROM decisions WHERE event_id = %s", (event_id,)).fetchone()[0]
        == 1
    )


def test_decision_row_holds_the_whole_decision(server: Server, db) -> None:
    event_id = f"row-{uuid.uuid4()}"
    body = rank_body(event_id, n_actions=4, excludedActions=["a1"], deferActivation=True)
    with server.client() as c:
        answer = c.post("/rank", json=body).json()
    row = db.execute(
        "SELECT context, actions, excluded, ranking, reward_action, probability, policy_name,"
        " model_version, learning_mode, deferred, created_at FROM decisions WHERE event_id = %s",
        (event_id,),
    ).fetchone()
    (
        context,
        actions,
        excluded,
        ranking,
        chosen,
        probability,
        policy,
        version,
        mode,
        deferred,
        at,
    ) = row
    assert context == body["contextFeatures"]
    assert [a["id"] for a in actions] == ["a0", "a1", "a2", "a3"]
    assert actions[2]["features"] == [{"color": "c2"}]
    assert excluded == ["a1"]
    assert ranking == answer["ranking"]
    assert actions[chosen]["id"] == answer["rewardActionId"] == ranking[0]["id"]
    assert probability == ranking[0]["probability"] > 0
    assert {r["id"]: r["probability"] for r in ranking}["a1"] == 0.0
    assert abs(sum(r["probability"] for r in ranking) - 1.0) < 1e-6
    assert policy == "default" and version and mode == "Online" and deferred is True
    assert at is not None
