"""The HTTP API in this process (Starlette's TestClient runs the app and its lifespan) against
the test database: the shapes a client sees, without starting a server. What only a real
process shows (crashes, workers, outages) stays in tests/e2e."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.keys import Keys
from app.main import create_app
from app.settings import Settings
from app.store.db import migrate
from policies.arguments import DEFAULT_ARGUMENTS

API, ADMIN = "in-process-api-key", "in-process-admin-key"
BASE = "/personalizer/v1.0"
ACTIONS = [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}]


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    migrate(database_url)
    app = create_app(Settings(), database_url, Keys(API, ADMIN))
    with TestClient(app, headers={"Ocp-Apim-Subscription-Key": API}) as test_client:
        yield test_client


def test_health_names_this_process_the_learner(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "learner"


def test_rank_answers_and_logs_the_decision(client: TestClient, db) -> None:
    body = {"contextFeatures": [{"user": "u"}], "actions": ACTIONS, "eventId": "in-process-1"}
    answer = client.post(f"{BASE}/rank", json=body)
    assert answer.status_code == 201, answer.text
    ranking = answer.json()["ranking"]
    assert sorted(r["id"] for r in ranking) == ["a", "b"]
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0)
    logged = db.execute(
        "SELECT reward_action FROM decisions WHERE event_id = 'in-process-1'"
    ).fetchone()
    assert logged is not None  # committed before the 201
    reward = client.post(f"{BASE}/events/in-process-1/reward", json={"value": 1})
    assert reward.status_code == 204, reward.text


def test_admin_calls_need_the_admin_key(client: TestClient) -> None:
    answer = client.get(f"{BASE}/configurations/policy")
    assert answer.status_code == 401
    assert answer.json()["error"]["innerError"]["code"] == "InvalidApiAccess"
    admin = {"Ocp-Apim-Subscription-Key": ADMIN}
    answer = client.get(f"{BASE}/configurations/policy", headers=admin)
    assert answer.status_code == 200
    assert answer.json() == {"name": "default", "arguments": DEFAULT_ARGUMENTS}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"name": "p", "arguments": "--cb_explore_adf --invert_hash x"},
            "InvalidPolicyConfiguration",
        ),
        ({"name": "", "arguments": DEFAULT_ARGUMENTS}, "InvalidPolicyContract"),
        (["not", "an", "object"], "InvalidPolicyContract"),
    ],
)
def test_a_bad_policy_is_a_400(client: TestClient, body: object, code: str) -> None:
    admin = {"Ocp-Apim-Subscription-Key": ADMIN}
    answer = client.put(f"{BASE}/configurations/policy", json=body, headers=admin)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["innerError"]["code"] == code
