"""`serve --workers 4`: one learner elected among the workers; when it dies another takes over
within 5 s (the new epoch in `learner_lease`); the learner's new models reach every worker
within 2 × modelExportFrequency."""

from __future__ import annotations

import functools
import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from policies.vw import Policy
from tests.conftest import API_KEY, Server
from tests.offline import model_of, offline_model, wait_same_model

WORKERS = 4
EXPORT_S = 2
ACTIONS = [{"id": f"a{i}", "features": [{"kind": f"k{i}"}]} for i in range(5)]


@pytest.fixture(scope="module")
def workers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        database_url, tmp_path_factory.mktemp("workers"), env={"DS_WORKERS": str(WORKERS)}
    ).start()
    yield srv
    srv.stop()


def _health(server: Server) -> dict:
    # a new connection each time, so the kernel spreads the calls over the workers
    return httpx.get(f"{server.url}/healthz", timeout=5).json()


def _survey(server: Server, want: int = WORKERS, timeout: float = 20) -> dict[int, dict]:
    """healthz of each worker process, keyed by pid."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        health = _health(server)
        seen[health["pid"]] = health
    return seen


def _learners(server: Server) -> set[int]:
    return {pid for pid, h in _survey(server).items() if h["role"] == "learner"}


def test_one_learner_and_fail_over(workers: Server, db) -> None:
    survey = _survey(workers)
    assert len(survey) == WORKERS, f"saw {len(survey)} worker processes"
    learners = [pid for pid, h in survey.items() if h["role"] == "learner"]
    assert len(learners) == 1, survey
    epoch, pid = db.execute("SELECT epoch, pid FROM learner_lease").fetchone()
    assert pid == learners[0]

    os.kill(learners[0], signal.SIGKILL)
    killed_at = time.monotonic()
    # the database says who leads: a new epoch, taken by another process
    while time.monotonic() - killed_at < 5:
        now_epoch, now_pid = db.execute("SELECT epoch, pid FROM learner_lease").fetchone()
        if now_epoch > epoch:
            break
        time.sleep(0.05)
    took = time.monotonic() - killed_at
    assert now_epoch > epoch and now_pid != learners[0], (
        f"no new learner within 5 s (epoch {now_epoch}, pid {now_pid})\n{workers.log()[-3000:]}"
    )
    print(f"new learner {now_pid} (epoch {now_epoch}) after {took:.2f} s")
    # and the workers agree: exactly one says it is the learner, the one the database names
    deadline = time.monotonic() + 10
    while (learners := _learners(workers)) != {now_pid} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert learners == {now_pid}, learners


def test_rewards_reach_every_worker(workers: Server, db) -> None:
    with workers.admin() as admin:
        document = admin.get("/configurations/service").json()
        document.update(modelExportFrequency=f"PT{EXPORT_S}S")
        assert admin.put("/configurations/service", json=document).status_code == 200
    before = _survey(workers)
    assert len(before) == WORKERS
    target = max(h["eventsLearned"] for h in before.values()) + 200
    probe = {"contextFeatures": [{"user": {"segment": "s"}}], "actions": ACTIONS}
    with workers.client() as client:
        for _ in range(200):
            event_id = f"burst-{uuid.uuid4()}"
            answer = client.post("/rank", json={**probe, "eventId": event_id}).json()
            value = 1.0 if answer["rewardActionId"] == "a3" else 0.0
            reward = client.post(f"/events/{event_id}/reward", json={"value": value})
            assert reward.status_code == 204
    rewarded_at = time.monotonic()
    updated: dict[int, float] = {}
    while len(updated) < WORKERS and time.monotonic() - rewarded_at < 4 * EXPORT_S:
        health = _health(workers)
        if health["eventsLearned"] >= target and health["pid"] not in updated:
            updated[health["pid"]] = time.monotonic() - rewarded_at
    assert len(updated) == WORKERS, f"workers with the new model: {updated}"
    assert max(updated.values()) <= 2 * EXPORT_S, updated
    print(f"seconds until each worker served the new model: {sorted(updated.values())}")
    # and the decisions changed: every worker now favours the rewarded action
    headers = {"Ocp-Apim-Subscription-Key": API_KEY}
    for _ in range(12):  # a new connection each time: several workers answer
        answer = httpx.post(
            f"{workers.url}/personalizer/v1.0/rank", json=probe, headers=headers
        ).json()
        probabilities = {r["id"]: r["probability"] for r in answer["ranking"]}
        assert probabilities["a3"] == max(probabilities.values()) > 0.2
    # the learner's model is exactly the offline replay of the joined events, and every worker
    # serves it (loaded from the learner's snapshot)
    with workers.admin() as admin:
        arguments = admin.get("/configurations/policy").json()["arguments"]
    survey = _survey(workers)
    (policy_id,) = {h["policyId"] for h in survey.values()}
    exploration = document["explorationPercentage"]
    learned: list[int] = []
    offline = offline_model(db, policy_id, arguments, exploration, learned=learned)
    for pid, health in sorted(survey.items(), key=lambda item: item[1]["role"] != "learner"):
        fetch = functools.partial(_model_of, workers, pid, arguments, exploration)
        wait_same_model(fetch, offline, learned, f"the {health['role']}'s model (worker {pid})")


def _model_of(server: Server, pid: int, arguments: str, exploration: float) -> tuple[str, Policy]:
    """GET model from worker `pid`: new connections until a healthz comes from that process,
    then GET model on that connection (so the same process answers it)."""
    deadline = time.monotonic() + 10
    while True:
        with server.admin() as admin:
            health = admin.get(f"{server.url}/healthz")
            if health.json()["pid"] == pid:
                answer = admin.get("/model")
                assert _local_address(answer) == _local_address(health), "a new connection"
                return model_of(answer, arguments, exploration)
        assert time.monotonic() < deadline, f"no connection reached worker {pid}"


def _local_address(answer: httpx.Response) -> tuple[str, int]:
    return answer.extensions["network_stream"].get_extra_info("client_addr")


def test_configuration_reaches_every_worker_even_after_a_lost_connection(
    workers: Server, db
) -> None:
    """A change made through one worker reaches all of them; a worker whose LISTEN connection
    dropped re-reads the configuration when it reconnects (NOTIFYs in the gap are lost)."""

    def modes() -> set[str]:
        return {h["learningMode"] for h in _survey(workers).values()}

    def change(mode: str) -> None:
        with workers.admin() as admin:
            document = admin.get("/configurations/service").json()
            document.pop("latestApprenticeModeMetrics", None)
            document["learningMode"] = mode
            assert admin.put("/configurations/service", json=document).status_code == 200

    change("LoggingOnly")
    deadline = time.monotonic() + 5
    while modes() != {"LoggingOnly"}:
        assert time.monotonic() < deadline, "a worker kept the old learning mode"
    # cut every worker's LISTEN connection, and change the configuration in the gap
    terminated = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'decision-service-election' AND datname = current_database()"
    ).fetchone()[0]
    assert terminated == WORKERS
    change("Online")
    deadline = time.monotonic() + 10
    while modes() != {"Online"}:
        assert time.monotonic() < deadline, "a worker missed the change made while it reconnected"
    assert len(_learners(workers)) == 1
