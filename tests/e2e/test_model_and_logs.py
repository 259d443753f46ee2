"""Personalizer's model and log endpoints, and the apprentice metrics."""

from __future__ import annotations

import time
import uuid

import httpx

from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.features import Action
from policies.vw import Policy
from tests.conftest import Server

ACTIONS = [{"id": f"a{i}", "features": [{"kind": f"k{i}"}]} for i in range(3)]
CONTEXT = [{"user": {"segment": "x"}}]


def _health(server: Server) -> dict:
    return httpx.get(f"{server.url}/healthz").json()


def _train(server: Server, n: int, good: str = "a2") -> None:
    with server.client() as client:
        for _ in range(n):
            event_id = f"m-{uuid.uuid4()}"
            body = {"contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id}
            answer = client.post("/rank", json=body).json()
            value = 1.0 if answer["rewardActionId"] == good else 0.0
            assert (
                client.post(f"/events/{event_id}/reward", json={"value": value}).status_code == 204
            )


def _served(server: Server) -> dict[str, float]:
    with server.client() as client:
        answer = client.post("/rank", json={"contextFeatures": CONTEXT, "actions": ACTIONS}).json()
    return {r["id"]: r["probability"] for r in answer["ranking"]}


def _wait_learned(server: Server, n: int) -> None:
    deadline = time.monotonic() + 20
    while _health(server)["eventsLearned"] < n:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_export_import_reset_model(server: Server) -> None:
    _train(server, 150)
    _wait_learned(server, 150)
    trained = _served(server)
    with server.admin() as admin:
        exported = admin.get("/model")
        assert exported.status_code == 200
        assert exported.headers["content-type"] == "application/octet-stream"
        model = exported.content
        # the exported bytes are a VW model that ranks like the service does
        offline = Policy.from_bytes(with_epsilon(DEFAULT_ARGUMENTS, 0.2), model)
        actions = [Action(a["id"], a["features"]) for a in ACTIONS]
        expected = dict(zip([a.id for a in actions], offline.pmf(CONTEXT, actions), strict=True))
        assert {k: round(v, 6) for k, v in trained.items()} == {
            k: round(v, 6) for k, v in expected.items()
        }
        assert admin.get("/model", params={"signed": "true"}).status_code == 400
        properties = admin.get("/model/properties").json()
        assert set(properties) == {"creationTime", "lastModifiedTime"}

        policy_before = _health(server)["policyId"]
        assert admin.delete("/model").status_code == 204
        assert _health(server)["policyId"] != policy_before
        assert _health(server)["eventsLearned"] == 0
        fresh = _served(server)
        assert max(fresh.values()) - min(fresh.values()) < 1e-6  # uniform again

        bad = admin.put(
            "/model", content=b"not a model", headers={"Content-Type": "application/octet-stream"}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["innerError"]["code"] == "InvalidModelImportFormat"
        assert admin.put("/model", content=b"").status_code == 400
        imported = admin.put(
            "/model", content=model, headers={"Content-Type": "application/octet-stream"}
        )
        assert imported.status_code == 204
    assert _served(server) == trained  # the imported model serves what it learned
    with server.client() as client:  # the API key cannot touch the model
        assert client.get("/model").status_code == 401
        assert client.delete("/model").status_code == 401


def test_log_properties_and_delete(server: Server, db) -> None:
    with server.admin() as admin:
        dates = admin.get("/logs/properties").json()["dateRange"]
        assert dates["from"] and dates["to"] and dates["from"] <= dates["to"]
        learned = _health(server)["eventsLearned"]
        assert admin.delete("/logs").status_code == 204
    remaining = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
    needed = db.execute(
        "SELECT count(*) FROM joined j WHERE j.seq > coalesce("
        " (SELECT max(cursor) FROM snapshots s JOIN policies p ON p.id = s.policy_id"
        "  WHERE p.role = 'champion'), (SELECT start_seq FROM policies WHERE role = 'champion'))"
    ).fetchone()[0]
    assert remaining == needed  # only what the newest snapshot has not learned yet is kept
    assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    assert _health(server)["eventsLearned"] == learned  # the model is untouched


def test_apprentice_metrics(server: Server, db) -> None:
    with server.admin() as admin:
        document = admin.get("/configurations/service").json()
        assert "latestApprenticeModeMetrics" not in document
        document["learningMode"] = "Apprentice"
        assert admin.put("/configurations/service", json=document).status_code == 200
    rewards: dict[str, float] = {}
    with server.client() as client:
        for i in range(30):
            event_id = f"ap-{uuid.uuid4()}"
            client.post(
                "/rank", json={"contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id}
            )
            value = 1.0 if i % 3 == 0 else 0.0
            client.post(f"/events/{event_id}/reward", json={"value": value})
            rewards[event_id] = value
    deadline = time.monotonic() + 20
    while True:
        with server.admin() as admin:
            metrics = admin.get("/configurations/service").json().get("latestApprenticeModeMetrics")
        if metrics and metrics["numberOfEvents"] == 30:
            break
        assert time.monotonic() < deadline, metrics
        time.sleep(0.1)
    assert metrics["sumOfRewards"] == sum(rewards.values())
    imitated = [
        event_id
        for event_id, policy_action, reward_action in db.execute(
            "SELECT event_id, policy_action, reward_action FROM decisions WHERE event_id = ANY(%s)",
            (list(rewards),),
        ).fetchall()
        if policy_action == reward_action
    ]
    assert metrics["numberOfImitatedEvents"] == len(imitated)
    assert metrics["sumOfImitatedRewards"] == sum(rewards[e] for e in imitated)
    assert metrics["lastBatchMetrics"] == {
        k: metrics[k]
        for k in (
            "numberOfEvents",
            "sumOfRewards",
            "sumOfImitatedRewards",
            "numberOfImitatedEvents",
        )
    }
    with server.admin() as admin:
        document = admin.get("/configurations/service").json()
        document["learningMode"] = "Online"
        document.pop("latestApprenticeModeMetrics")
        assert admin.put("/configurations/service", json=document).status_code == 200
