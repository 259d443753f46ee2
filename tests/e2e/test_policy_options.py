"""The allowlist of policy options over HTTP, and a policy stored under older rules.

`PUT configurations/policy` accepts Personalizer's published arguments (`--dsjson` included, kept
in the stored string) and refuses, with 400 `InvalidPolicyConfiguration` naming the option, the
VW options that write files or reach the network. A champion stored before the allowlist, with
options it refuses, is put in the database before the server starts: the server starts, ranks
and learns with it, because loading a stored policy never validates it.

The module shares one server, started on a database that already holds that champion.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.store.db import migrate
from policies.arguments import ArgumentsError, validate
from tests.conftest import ROOT, Server, rank_body

POLICY = "/configurations/policy"
# Accepted by the denylist the allowlist replaced (VW runs it); the allowlist refuses both extras.
OLDER_NAME = "stored-before-the-allowlist"
OLDER_ARGUMENTS = (
    "--cb_explore_adf --epsilon 0.2 -l 0.01 --cb_type mtr -q :: --random_seed 7 --permutations"
)
# Azure/azure-sdk-for-net sdk/personalizer/Azure.AI.Personalizer/tests/Personalizer/
# EvaluationsTests.cs ("Custom Policy 1").
PUBLISHED = "--cb_explore_adf --epsilon 0.2 --dsjson --cb_type ips -l 0.5 --l1 1E-07 --power_t 0.5"
VALID = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.01 --cb_type mtr -q ::"
# (what is appended to a valid policy, the option the message must name, the file it names)
REFUSED = [
    ("--dump_json_weights_experimental w.json", "--dump_json_weights_experimental", "w.json"),
    ("--span_server 127.0.0.1", "--span_server", None),
    ("--invert_hash x", "--invert_hash", "x"),
    ("-f model.out", "-f", "model.out"),
    ("--readable_model r.txt", "--readable_model", "r.txt"),
]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The schema, then the older champion written directly, then the server."""
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO policies (name, arguments, role, start_seq, created_at)"
            " VALUES (%s, %s, 'champion', 0, now())",
            (OLDER_NAME, OLDER_ARGUMENTS),
        )
    srv = Server(database_url, tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


def _health(server: Server) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/healthz", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _policy(server: Server) -> dict[str, Any]:
    with server.admin() as admin:
        answer = admin.get(POLICY)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _put(server: Server, arguments: str, name: str = "custom") -> httpx.Response:
    with server.admin() as admin:
        return admin.put(POLICY, json={"name": name, "arguments": arguments})


def _rank(server: Server, event_id: str) -> dict[str, Any]:
    with server.client() as client:
        answer = client.post("/rank", json=rank_body(event_id))
    assert answer.status_code == 201, answer.text
    ranking = answer.json()["ranking"]
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0)
    return answer.json()


@pytest.fixture(scope="module", autouse=True)
def at_start(server: Server) -> dict[str, Any]:
    """What the server did before any test changed its policy: the policy and health it
    reported, a rank, and the health once that rank's reward was learned."""
    seen = {"policy": _policy(server), "health": _health(server)}
    seen["rank"] = _rank(server, "older-rules-1")
    with server.client() as client:
        reward = client.post("/events/older-rules-1/reward", json={"value": 1.0})
    assert reward.status_code == 204, reward.text
    deadline = time.monotonic() + 30
    while (health := _health(server))["eventsLearned"] < 1:
        assert time.monotonic() < deadline, f"the reward was not learned: {health}"
        time.sleep(0.05)
    seen["learned"] = health
    return seen


def test_a_policy_stored_under_older_rules_still_starts_ranks_and_learns(
    server: Server, db: psycopg.Connection[Any], at_start: dict[str, Any]
) -> None:
    with pytest.raises(ArgumentsError, match="not allowed: --random_seed, --permutations"):
        validate(OLDER_ARGUMENTS)
    older_id = db.execute("SELECT id FROM policies WHERE name = %s", (OLDER_NAME,)).fetchone()[0]
    assert at_start["policy"] == {"name": OLDER_NAME, "arguments": OLDER_ARGUMENTS}
    assert at_start["health"]["policy"] == OLDER_NAME
    assert at_start["health"]["modelVersion"] == f"{older_id}.0"
    assert at_start["rank"]["rewardActionId"]
    row = db.execute(
        "SELECT policy_name, policy_id FROM decisions WHERE event_id = 'older-rules-1'"
    ).fetchone()
    assert row == (OLDER_NAME, older_id)
    assert at_start["learned"]["policy"] == OLDER_NAME
    assert at_start["learned"]["modelVersion"] == f"{older_id}.1"
    # New configurations follow the new rules.
    assert _refused_names(_put(server, OLDER_ARGUMENTS)) == ["--random_seed", "--permutations"]


def test_personalizers_published_arguments_are_accepted_and_rank(
    server: Server, db: psycopg.Connection[Any]
) -> None:
    answer = _put(server, PUBLISHED, name="custom-published")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "custom-published", "arguments": PUBLISHED}
    assert _policy(server) == {"name": "custom-published", "arguments": PUBLISHED}  # --dsjson kept
    assert _health(server)["policy"] == "custom-published"
    _rank(server, "published-1")
    row = db.execute("SELECT policy_name FROM decisions WHERE event_id = 'published-1'").fetchone()
    assert row == ("custom-published",)


def _refused_names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 400, f"{answer.status_code}: {answer.text[:500]}"
    error = answer.json()["error"]
    assert error["code"] == "BadRequest", error
    assert error["innerError"]["code"] == "InvalidPolicyConfiguration", error
    head, _, names = error["message"].partition(": ")
    assert head == "Policy arguments contain options that are not allowed", error
    return names.rstrip(".").split(", ")


@pytest.mark.parametrize(("extra", "shown", "file"), REFUSED, ids=[r[1] for r in REFUSED])
def test_options_that_write_files_or_reach_the_network_are_refused(
    server: Server, extra: str, shown: str, file: str | None
) -> None:
    before = _policy(server)
    assert _refused_names(_put(server, f"{VALID} {extra}")) == [shown]
    assert _policy(server) == before
    if file is not None:
        assert not (ROOT / file).exists() and not Path(file).exists()


def test_every_refused_option_is_named(server: Server) -> None:
    extras = " ".join(extra for extra, _, _ in REFUSED)
    assert _refused_names(_put(server, f"{VALID} {extras}")) == [shown for _, shown, _ in REFUSED]
