"""After a restart the service serves the model it had learned: the same probabilities for
the same context and actions, asked under new eventIds (a retried eventId would only replay
the log). Holds for a graceful stop (snapshot at shutdown) and for kill -9 (newest snapshot,
then the joined events after its cursor, learned again in order)."""

from __future__ import annotations

import random
import signal
import time
import uuid

import httpx
import pytest

from tests.conftest import Server

ACTIONS = [{"id": f"a{i}", "features": [{"kind": f"k{i}"}]} for i in range(4)]
PROBES = [[{"user": {"segment": s}}, {"hour": h}] for s in ("x", "y", "z") for h in (1, 9)]


def _learned(server: Server) -> int:
    return int(httpx.get(f"{server.url}/healthz").json()["modelVersion"].split(".")[1])


def _wait_learned(server: Server, expected: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _learned(server) < expected:
        assert time.monotonic() < deadline, f"learned {_learned(server)} of {expected}"
        time.sleep(0.05)


def _train(server: Server, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    with server.client() as client:
        for _ in range(rounds):
            context = rng.choice(PROBES)
            event_id = f"train-{uuid.uuid4()}"
            answer = client.post(
                "/rank", json={"contextFeatures": context, "actions": ACTIONS, "eventId": event_id}
            ).json()
            good = answer["rewardActionId"] == (
                "a1" if context[0]["user"]["segment"] == "x" else "a3"
            )
            client.post(f"/events/{event_id}/reward", json={"value": 1.0 if good else 0.0})


def _probe(server: Server) -> list[dict[str, float]]:
    with server.client() as client:
        answers = [
            client.post(
                "/rank",
                json={"contextFeatures": c, "actions": ACTIONS, "eventId": f"probe-{uuid.uuid4()}"},
            ).json()
            for c in PROBES
        ]
    return [{r["id"]: r["probability"] for r in a["ranking"]} for a in answers]


def _assert_same(before: list[dict[str, float]], after: list[dict[str, float]]) -> None:
    for b, a in zip(before, after, strict=True):
        assert b.keys() == a.keys()
        for action in b:
            assert a[action] == pytest.approx(b[action], abs=1e-6)


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "kill-9"]
)
def test_restart_serves_the_learned_model(server: Server, stop_signal: int) -> None:
    learned_before = _learned(server)
    _train(server, 400, seed=stop_signal)
    _wait_learned(server, learned_before + 400)
    before = _probe(server)
    assert any(max(p.values()) > 0.5 for p in before), "the model should have moved off uniform"
    server.stop(stop_signal)
    server.start()
    assert _learned(server) == learned_before + 400
    _assert_same(before, _probe(server))
