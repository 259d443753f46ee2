"""Offline evaluations end to end: real traffic over HTTP, then evaluations through the
`azure-ai-personalizer` SDK (2022-09-01-preview) and the v1.0 paths, checked against the logs.

The population: three user types, four actions, one best action per type (a click with
probability 0.8, else 0.1); some requests exclude actions, so the Baseline (the first
non-excluded action) is not always `a0`. Besides the plain rank + reward events the traffic holds
events the evaluation must leave out or treat specially: rewarded twice (earliest counts), never
rewarded (default reward), rewarded after the wait time (default reward), deferred and never
activated (final, not learned: not evaluated), deferred then activated, and decisions made in
LoggingOnly mode (not evaluated).

Acceptance: the Baseline and Random estimates equal those computed here from the `decisions`,
`activations` and `rewards` rows of the same window (the reward recomputed from the rewards
themselves and checked against `joined`), to 1e-9.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from azure.ai.personalizer import PersonalizerAdministrationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ResourceNotFoundError

from policies.arguments import DEFAULT_ARGUMENTS
from tests.conftest import ADMIN_KEY, Server, scalar, wait_until

SEED = 20250307
WAIT_S = 5
DEFAULT_REWARD = 0.0
WORKERS = 4
EVENTS_PER_WORKER = 350
TYPES = {"student": "a2", "parent": "a3", "retiree": "a0"}  # user type → its best action
ACTIONS = [{"id": f"a{i}", "features": [{"genre": f"g{i}", "length": i / 4}]} for i in range(4)]
CLICK_BEST, CLICK_OTHER = 0.8, 0.1
FAST = DEFAULT_ARGUMENTS.replace("-l 0.001", "-l 0.5")
ADMIN_HEADERS = {"Ocp-Apim-Subscription-Key": ADMIN_KEY}
V2022 = "2022-09-01-preview"


# ---------------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """What the clients did, by eventId (shared by the worker threads)."""

    kinds: dict[str, str] = field(default_factory=dict)
    first_reward: dict[str, float] = field(default_factory=dict)  # first value sent in time
    late: list[tuple[str, float]] = field(default_factory=list)  # (eventId, monotonic rank time)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _clicked(rng: random.Random, user: str, action_id: str) -> float:
    return float(rng.random() < (CLICK_BEST if TYPES[user] == action_id else CLICK_OTHER))


def _request(rng: random.Random, event_id: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    user = rng.choice(list(TYPES))
    body: dict[str, Any] = {
        "contextFeatures": [{"user": {"type": user}}, {"device": rng.choice(["m", "d"])}],
        "actions": ACTIONS,
        "eventId": event_id,
        **extra,
    }
    roll = rng.random()
    if roll < 0.2:
        body["excludedActions"] = ["a0"]
    elif roll < 0.3:
        body["excludedActions"] = rng.sample(["a0", "a1", "a3"], 2)
    return user, body


def _post(client: httpx.Client, path: str, traffic: Traffic, expected: int, **kw: Any):
    answer = client.post(path, **kw)
    if answer.status_code != expected:
        with traffic.lock:
            traffic.errors.append(f"{path}: {answer.status_code} {answer.text[:300]}")
        return None
    return answer


def _worker(server: Server, worker: int, traffic: Traffic) -> None:
    rng = random.Random(SEED * 10 + worker)
    kinds = ["once", "twice", "silent", "deferred-silent", "deferred-activated"]
    try:
        with server.client() as client:
            for i in range(EVENTS_PER_WORKER):
                event_id = f"eval-{worker}-{i}"
                kind = rng.choices(kinds, weights=(86, 5, 3, 3, 3))[0]
                if i > EVENTS_PER_WORKER * 0.6 and kind.endswith("silent"):
                    kind = "once"  # final at the wait time: early, so nobody waits for them
                deferred = kind.startswith("deferred")
                user, body = _request(rng, event_id, deferActivation=deferred)
                answer = _post(client, "/rank", traffic, 201, json=body)
                if answer is None:
                    continue
                chosen = answer.json()["rewardActionId"]
                with traffic.lock:
                    traffic.kinds[event_id] = kind
                if kind in ("silent", "deferred-silent"):
                    continue
                if kind == "deferred-activated":
                    _post(client, f"/events/{event_id}/activate", traffic, 204)
                value = _clicked(rng, user, chosen)
                if _post(client, f"/events/{event_id}/reward", traffic, 204, json={"value": value}):
                    with traffic.lock:
                        traffic.first_reward[event_id] = value
                if kind == "twice":
                    path = f"/events/{event_id}/reward"
                    _post(client, path, traffic, 204, json={"value": 1.0 - value})
    except Exception as exc:  # a crash of the client itself must fail the test
        with traffic.lock:
            traffic.errors.append(f"worker {worker} crashed: {exc!r}")


@pytest.fixture(scope="module")
def traffic(server: Server, database_url: str) -> Traffic:
    """~1,500 events over HTTP, all final when it returns."""
    server.configure(
        rewardWaitTime=f"PT{WAIT_S}S",
        defaultReward=DEFAULT_REWARD,
        rewardAggregation="earliest",
        modelExportFrequency="PT1S",
    )
    record = Traffic()
    rng = random.Random(SEED)
    with server.client() as client:
        # decisions in LoggingOnly mode: joined, never evaluated
        server.configure(learningMode="LoggingOnly")
        for i in range(20):
            user, body = _request(rng, f"logging-only-{i}")
            answer = _post(client, "/rank", record, 201, json=body)
            assert answer is not None, record.errors
            value = _clicked(rng, user, answer.json()["rewardActionId"])
            assert _post(
                client, f"/events/logging-only-{i}/reward", record, 204, json={"value": value}
            )
            record.kinds[f"logging-only-{i}"] = "logging-only"
            record.first_reward[f"logging-only-{i}"] = value
        server.configure(learningMode="Online")
        # rewarded only after the wait time: the default reward
        for i in range(15):
            _, body = _request(rng, f"late-{i}")
            assert _post(client, "/rank", record, 201, json=body) is not None, record.errors
            record.kinds[f"late-{i}"] = "late"
            record.late.append((f"late-{i}", time.monotonic()))

    threads = [
        threading.Thread(target=_worker, args=(server, w, record), daemon=True)
        for w in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a traffic thread did not finish"
    assert not record.errors, record.errors[:10]

    with server.client() as client:
        for event_id, ranked_at in record.late:
            time.sleep(max(0.0, ranked_at + WAIT_S + 1 - time.monotonic()))
            assert _post(client, f"/events/{event_id}/reward", record, 204, json={"value": 1.0})
    with psycopg.connect(database_url, autocommit=True) as db:
        decisions = scalar(db, "SELECT count(*) FROM decisions")
        assert decisions == len(record.kinds)
        wait_until(
            lambda: scalar(db, "SELECT count(*) FROM joined") == decisions,
            (WAIT_S + 2) * 4,
            "every event final",
        )
    return record


# ---------------------------------------------------------------------------------------------
# The expected estimates, computed from the logs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    event_id: str
    created_at: datetime
    learning_mode: str
    reward_action: int
    probability: float
    first_eligible: int
    eligible: int
    reward: float  # recomputed from the rewards and activations
    learn: bool


def logged_events(db, traffic: Traffic) -> list[Logged]:
    """Every decision with its final reward recomputed from the rows of `rewards` and
    `activations` (earliest reward received within the wait time, else the default; a deferred
    event activated only after the wait time is not learned), checked against `joined`."""
    wait = timedelta(seconds=WAIT_S)
    rewards: dict[str, list[tuple[datetime, int, float]]] = {}
    for event_id, received_at, row_id, value in db.execute(
        "SELECT event_id, received_at, id, value FROM rewards"
    ):
        rewards.setdefault(event_id, []).append((received_at, row_id, value))
    activated: dict[str, datetime] = dict(
        db.execute("SELECT event_id, min(received_at) FROM activations GROUP BY event_id")
    )
    rows = db.execute(
        "SELECT d.event_id, d.created_at, d.learning_mode, d.actions, d.excluded,"
        " d.reward_action, d.probability, d.deferred, j.reward, j.learn"
        " FROM decisions d JOIN joined j USING (event_id) ORDER BY j.seq"
    ).fetchall()
    events, mismatches = [], []
    for (
        event_id,
        created,
        mode,
        actions,
        excluded,
        action,
        p,
        deferred,
        joined_reward,
        learn,
    ) in rows:
        closes = created + wait
        learns = not deferred or (event_id in activated and activated[event_id] <= closes)
        in_time = sorted(r for r in rewards.get(event_id, []) if r[0] <= closes)
        reward = in_time[0][2] if learns and in_time else DEFAULT_REWARD
        if (reward, learns) != (joined_reward, learn):
            mismatches.append((event_id, (reward, learns), (joined_reward, learn)))
        eligible = [i for i, a in enumerate(actions) if a["id"] not in set(excluded)]
        events.append(
            Logged(event_id, created, mode, action, p, eligible[0], len(eligible), reward, learns)
        )
    assert not mismatches, f"joined differs from the rewards rows: {mismatches[:10]}"

    # and from what the clients sent
    for e in events:
        kind = traffic.kinds[e.event_id]
        if kind in ("once", "twice", "deferred-activated", "logging-only"):
            assert (e.reward, e.learn) == (traffic.first_reward[e.event_id], True), e
        elif kind in ("silent", "late"):
            assert (e.reward, e.learn) == (DEFAULT_REWARD, True), e
        else:
            assert kind == "deferred-silent" and not e.learn, e
    return events


def in_window(events: list[Logged], start: datetime, end: datetime) -> list[Logged]:
    """The events an evaluation of [start, end) replays."""
    return [
        e for e in events if start <= e.created_at < end and e.learn and e.learning_mode == "Online"
    ]


def baseline_value(events: list[Logged]) -> float:
    return sum(e.reward * (e.reward_action == e.first_eligible) / e.probability for e in events) / (
        len(events)
    )


def random_value(events: list[Logged]) -> float:
    return sum(e.reward / (e.eligible * e.probability) for e in events) / len(events)


# ---------------------------------------------------------------------------------------------
# Clients and polling
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[PersonalizerAdministrationClient]:
    with PersonalizerAdministrationClient(
        server.url, AzureKeyCredential(ADMIN_KEY), retry_total=0, connection_timeout=30
    ) as client:
        yield client


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _poll_v1(server: Server, evaluation_id: str, timeout: float = 60) -> dict[str, Any]:
    """GET the v1.0 evaluation until it leaves `pending` (the server may be restarting)."""

    def done() -> dict[str, Any] | None:
        try:
            with server.admin() as admin:
                answer = admin.get(f"/evaluations/{evaluation_id}")
        except httpx.TransportError:
            return None
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body if body["status"] != "pending" else None

    return wait_until(done, timeout, f"evaluation {evaluation_id} finished")


def _results(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in evaluation["policyResults"]}


def _job_pids(server: Server, evaluation_id: str) -> list[int]:
    """The evaluation job processes the server started for `evaluation_id` (from /proc)."""
    assert server.process is not None
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        job = b"app.loop.evaluations" in command and evaluation_id.encode() in command
        if parent == server.process.pid and job:
            pids.append(int(entry))
    return pids


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its reaper."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _error_code(answer: httpx.Response) -> str:
    return answer.json()["error"]["innerError"]["code"]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_sdk_evaluation_matches_the_logs(
    server: Server, sdk: PersonalizerAdministrationClient, traffic: Traffic, db
) -> None:
    events = logged_events(db, traffic)
    online = sorted(e.created_at for e in events if e.learning_mode == "Online")
    # a window that cuts the traffic at both ends: start inclusive, end exclusive
    start, end = online[100], online[-200]
    window = in_window(events, start, end)
    assert 900 < len(window) < len(events) - 200
    assert any(e.first_eligible != 0 for e in window), "some baselines are not a0"
    assert any(e.reward_action == e.first_eligible for e in window)

    evaluation_id = f"sdk-{uuid.uuid4().hex[:8]}"
    sdk.create_evaluation(
        evaluation_id,
        {
            "name": "SDK evaluation",
            "startTime": _iso(start),
            "endTime": _iso(end),
            "policies": [{"name": "fast", "arguments": FAST}],
        },
    )

    def finished() -> dict[str, Any] | None:
        body = sdk.get_evaluation(evaluation_id, start_time=start, end_time=end)
        return body if body["status"] != "Running" else None

    evaluation = wait_until(finished, 60, "SDK evaluation finished")
    assert evaluation["status"] == "Succeeded", evaluation
    assert evaluation["id"] == evaluation_id
    assert evaluation["name"] == "SDK evaluation"
    assert evaluation["evaluationType"] == "Manual"
    value = {p["name"]: p for p in evaluation["content"]["value"]}
    assert list(value) == ["Online", "Baseline", "Random", "fast"]
    assert [p["policySource"] for p in value.values()] == ["Online", "Baseline", "Random", "Custom"]
    assert value["fast"]["arguments"] == FAST
    for policy in value.values():
        assert policy["summary"]["events"] == len(window)
        low, high = policy["summary"]["confidenceInterval"]
        assert low <= policy["summary"]["expectedReward"] <= high

    expected_baseline, expected_random = baseline_value(window), random_value(window)
    assert value["Baseline"]["summary"]["expectedReward"] == pytest.approx(
        expected_baseline, abs=1e-9
    )
    assert value["Random"]["summary"]["expectedReward"] == pytest.approx(expected_random, abs=1e-9)
    # a policy that learns the signal beats uniform choice clearly
    assert value["fast"]["summary"]["expectedReward"] > expected_random + 0.1

    listed = {e["id"]: e for e in sdk.list_evaluations()}
    assert listed[evaluation_id]["status"] == "Succeeded"
    assert listed[evaluation_id]["name"] == "SDK evaluation"

    # the report: a self-contained HTML page with inline SVG plots
    with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS, timeout=30) as admin:
        page = admin.get(f"/admin/evaluations/{evaluation_id}/report")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "<svg" in page.text
        assert "http://" not in page.text and "https://" not in page.text
        assert "fast" in page.text and "Baseline" in page.text
        data = admin.get(f"/admin/evaluations/{evaluation_id}/report", params={"format": "json"})
        assert data.status_code == 200, data.text
        assert data.json()["events"] == len(window)
        assert [p["name"] for p in data.json()["policies"]] == list(value)

    sdk.delete_evaluation(evaluation_id)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_evaluation(evaluation_id, start_time=start, end_time=end)
    assert evaluation_id not in {e["id"] for e in sdk.list_evaluations()}
    with server.admin() as admin:
        assert admin.get(f"/evaluations/{evaluation_id}").status_code == 404


def test_v1_evaluation_matches_the_logs(server: Server, traffic: Traffic, db) -> None:
    events = logged_events(db, traffic)
    start = min(e.created_at for e in events) - timedelta(seconds=1)
    end = max(e.created_at for e in events) + timedelta(seconds=1)
    window = in_window(events, start, end)
    left_out = {traffic.kinds[e.event_id] for e in events if e not in window}
    assert left_out == {"logging-only", "deferred-silent"}

    body = {
        "name": "v1 evaluation",
        "startTime": _iso(start),
        "endTime": _iso(end),
        "policies": [{"name": "fast", "arguments": FAST}],
    }
    with server.admin() as admin:
        created = admin.post("/evaluations", json=body)
        assert created.status_code == 201, created.text
        evaluation_id = created.json()["id"]
        assert created.headers["location"].endswith(f"/evaluations/{evaluation_id}")
        assert created.json()["status"] in ("pending", "completed")
        location = httpx.URL(server.url).join(created.headers["location"])
        listed = admin.get("/evaluations")
        assert evaluation_id in {e["id"] for e in listed.json()}
    evaluation = _poll_v1(server, evaluation_id)
    assert evaluation["status"] == "completed", evaluation
    with server.admin() as admin:
        assert admin.get(location).json() == evaluation

    results = _results(evaluation)
    assert list(results) == ["Online", "Baseline", "Random", "fast"]
    for policy in results.values():
        total = policy["totalSummary"]
        assert total["ipsEstimatorDenominator"] == len(window)
        assert sum(s["ipsEstimatorDenominator"] for s in policy["summary"]) == len(window)
        assert sum(s["ipsEstimatorNumerator"] for s in policy["summary"]) == pytest.approx(
            total["ipsEstimatorNumerator"], abs=1e-9
        )
        assert total["averageReward"] == pytest.approx(policy["estimates"]["ips"]["value"])

    baseline, uniform = results["Baseline"]["totalSummary"], results["Random"]["totalSummary"]
    assert baseline["averageReward"] == pytest.approx(baseline_value(window), abs=1e-9)
    assert uniform["averageReward"] == pytest.approx(random_value(window), abs=1e-9)
    assert baseline["nonZeroProbability"] == sum(
        e.reward_action == e.first_eligible for e in window
    )
    assert uniform["nonZeroProbability"] == len(window)

    with server.admin() as admin:
        assert admin.delete(f"/evaluations/{evaluation_id}").status_code == 204
        assert admin.get(f"/evaluations/{evaluation_id}").status_code == 404
        assert admin.delete(f"/evaluations/{evaluation_id}").status_code == 404


def _create_body(start: datetime, end: datetime, **changes: Any) -> dict[str, Any]:
    body = {
        "name": "bad",
        "startTime": _iso(start),
        "endTime": _iso(end),
        "policies": [{"name": "fast", "arguments": FAST}],
    }
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


BAD_CREATES: list[tuple[str, dict[str, Any], str]] = [
    ("missing name", {"name": None}, "InvalidEvaluationContract"),
    ("end before start", {"swap": True}, "InvalidEvaluationContract"),
    ("no start", {"startTime": None}, "InvalidEvaluationContract"),
    ("start not a date", {"startTime": "yesterday"}, "InvalidEvaluationContract"),
    (
        "eleven policies",
        {"policies": [{"name": f"p{i}", "arguments": FAST} for i in range(11)]},
        "InvalidEvaluationContract",
    ),
    (
        "duplicate names",
        {"policies": [{"name": "p", "arguments": FAST}, {"name": "p", "arguments": FAST}]},
        "DuplicateCustomPolicyNames",
    ),
    (
        "a reserved name",
        {"policies": [{"name": "Baseline", "arguments": FAST}]},
        "DuplicateCustomPolicyNames",
    ),
    (
        "bad arguments",
        {"policies": [{"name": "p", "arguments": "--cb_adf --not_an_option 3"}]},
        "InvalidPolicyConfiguration",
    ),
    (
        "forbidden arguments",
        {"policies": [{"name": "p", "arguments": "--cb_explore_adf -d /etc/passwd"}]},
        "InvalidPolicyConfiguration",
    ),
    ("window without logs", {"past": True}, "NoLogsExistInDateRange"),
    ("start before 1970", {"startTime": "0001-01-01T00:00:00+05:00"}, "InvalidEvaluationContract"),
    ("end after 9999", {"endTime": "9999-12-31T23:59:59-05:00"}, "InvalidEvaluationContract"),
]


@pytest.mark.parametrize(("case", "changes", "inner"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
def test_bad_create_is_refused(
    server: Server, traffic: Traffic, db, case: str, changes: dict[str, Any], inner: str
) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(minutes=1)
    changes = dict(changes)
    if changes.pop("swap", False):
        start, end = end, start
    if changes.pop("past", False):
        start, end = now - timedelta(days=30), now - timedelta(days=29)
    before = scalar(db, "SELECT count(*) FROM evaluations")
    with server.admin() as admin:
        answer = admin.post("/evaluations", json=_create_body(start, end, **changes))
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "BadRequest"
        assert _error_code(answer) == inner, answer.text
        put = admin.put(
            f"{server.url}/personalizer/evaluations/bad-{uuid.uuid4().hex[:8]}",
            params={"api-version": V2022},
            json=_create_body(start, end, **changes),
        )
        assert put.status_code == 400, put.text
        assert _error_code(put) == inner, put.text
    assert scalar(db, "SELECT count(*) FROM evaluations") == before


@pytest.mark.parametrize(
    "query",
    [
        {"intervalInMinutes": "²"},
        {"intervalInMinutes": "7"},
        {"window": "Sliding"},
        {"startTime": "0001-01-01T00:00:00+05:00"},
        {"swap": "1"},
    ],
)
def test_bad_2022_query_is_refused(server: Server, traffic: Traffic, query: dict[str, str]) -> None:
    now = datetime.now(UTC)
    params = {"api-version": V2022, "startTime": _iso(now - timedelta(hours=1)),
              "endTime": _iso(now)}  # fmt: skip
    if query.pop("swap", None):
        params["startTime"], params["endTime"] = params["endTime"], params["startTime"]
    params.update(query)
    with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS) as admin:
        body = _create_body(now - timedelta(hours=1), now + timedelta(minutes=1))
        created = admin.put(
            "/personalizer/evaluations/query-checks", params={"api-version": V2022}, json=body
        )
        assert created.status_code in (200, 400), created.text  # 400: made by an earlier case
        answer = admin.get("/personalizer/evaluations/query-checks", params=params)
        assert answer.status_code == 400, answer.text
        for key in ("skip", "top"):
            listed = admin.get("/personalizer/evaluations", params={"api-version": V2022, key: "²"})
            assert listed.status_code == 400, listed.text


def test_unknown_evaluation_is_404(server: Server, sdk: PersonalizerAdministrationClient) -> None:
    with server.admin() as admin:
        answer = admin.get("/evaluations/no-such-evaluation")
        assert answer.status_code == 404
        assert _error_code(answer) == "EvaluationNotFound"
        assert admin.delete("/evaluations/no-such-evaluation").status_code == 404
    now = datetime.now(UTC)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_evaluation("no-such-evaluation", start_time=now - timedelta(days=1), end_time=now)
    with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS) as admin:
        answer = admin.get("/admin/evaluations/no-such-evaluation/report")
        assert answer.status_code == 404


def _heavy_body(name: str) -> dict[str, Any]:
    """An evaluation of every event with four custom policies and the optimization search: it
    runs for several seconds."""
    now = datetime.now(UTC)
    return {
        "name": name,
        "startTime": _iso(now - timedelta(hours=1)),
        "endTime": _iso(now + timedelta(minutes=1)),
        "policies": [
            {"name": f"lr-{rate}", "arguments": DEFAULT_ARGUMENTS.replace("-l 0.001", f"-l {rate}")}
            for rate in (0.5, 0.1, 0.01, 0.003)
        ],
        "enableOfflineExperimentation": True,
    }


def test_kill_9_during_an_evaluation_reruns_it(server: Server, traffic: Traffic, db) -> None:
    with server.admin() as admin:
        created = admin.post("/evaluations", json=_heavy_body("interrupted"))
        assert created.status_code == 201, created.text
    evaluation_id = created.json()["id"]
    jobs = wait_until(lambda: _job_pids(server, evaluation_id), 15, "the job process started")
    assert scalar(db, "SELECT status FROM evaluations WHERE id = %s", evaluation_id) == "Running"

    # the server dies with SIGKILL; its job process must not outlive it
    server.stop(signal.SIGKILL)
    wait_until(
        lambda: not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in jobs),
        10,
        "the job process died with the server",
    )
    assert scalar(db, "SELECT status FROM evaluations WHERE id = %s", evaluation_id) == "Running"
    server.start()

    evaluation = _poll_v1(server, evaluation_id, timeout=120)
    assert evaluation["status"] == "completed", evaluation
    assert scalar(db, "SELECT attempts FROM evaluations WHERE id = %s", evaluation_id) == 2
    sources = [p["policySource"] for p in evaluation["policyResults"]]
    assert sources[:3] == ["Online", "Baseline", "Random"]
    assert sources[3:7] == ["Custom"] * 4
    assert "OfflineExperimentation" in sources
    # the re-run replayed the same events
    events = logged_events(db, traffic)
    start = datetime.fromisoformat(evaluation["startTime"])
    end = datetime.fromisoformat(evaluation["endTime"])
    window = in_window(events, start, end)
    results = _results(evaluation)
    assert results["Baseline"]["totalSummary"]["ipsEstimatorDenominator"] == len(window)
    assert results["Baseline"]["totalSummary"]["averageReward"] == pytest.approx(
        baseline_value(window), abs=1e-9
    )


def test_deleting_a_running_evaluation_stops_its_job(server: Server, traffic: Traffic, db) -> None:
    with server.admin() as admin:
        created = admin.post("/evaluations", json=_heavy_body("deleted while running"))
        assert created.status_code == 201, created.text
        evaluation_id = created.json()["id"]
        jobs = wait_until(lambda: _job_pids(server, evaluation_id), 15, "the job started")
        assert admin.delete(f"/evaluations/{evaluation_id}").status_code == 204
    wait_until(lambda: not any(_alive(pid) for pid in jobs), 10, "the job stopped")
    assert scalar(db, "SELECT count(*) FROM evaluations WHERE id = %s", evaluation_id) == 0


def test_a_job_that_keeps_dying_ends_failed(server: Server, traffic: Traffic, db) -> None:
    """Each start of the job is killed: after three starts the evaluation is Failed, never left
    Running, and the server goes on serving."""
    with server.admin() as admin:
        created = admin.post("/evaluations", json=_heavy_body("doomed"))
        assert created.status_code == 201, created.text
    evaluation_id = created.json()["id"]
    killed: set[int] = set()
    for _ in range(3):
        jobs = wait_until(
            lambda: [p for p in _job_pids(server, evaluation_id) if p not in killed],
            15,
            "the job process (re)started",
        )
        for pid in jobs:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    evaluation = _poll_v1(server, evaluation_id, timeout=30)
    assert evaluation["status"] == "failed", evaluation
    assert "3 times" in evaluation.get("description", ""), evaluation
    assert scalar(db, "SELECT attempts FROM evaluations WHERE id = %s", evaluation_id) == 3
    assert not _job_pids(server, evaluation_id)
    with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS) as admin:
        assert admin.get(f"/admin/evaluations/{evaluation_id}/report").status_code == 409
    # still Failed after a restart: it is not picked up again
    server.restart()
    time.sleep(1)
    assert scalar(db, "SELECT status FROM evaluations WHERE id = %s", evaluation_id) == "Failed"
    assert not _job_pids(server, evaluation_id)


def test_2022_timeseries_covers_the_evaluated_window(
    server: Server, sdk: PersonalizerAdministrationClient, traffic: Traffic, db
) -> None:
    """GET with the evaluation's own startTime and endTime (the SDK requires them) shows all its
    events in the timeseries: the first point is the bucket of the first event, and with the
    default Expanding window the last point is the total."""
    events = logged_events(db, traffic)
    start = min(e.created_at for e in events if e.learning_mode == "Online" and e.learn)
    end = datetime.now(UTC) + timedelta(minutes=1)
    evaluation_id = f"series-{uuid.uuid4().hex[:8]}"
    sdk.create_evaluation(
        evaluation_id, {"name": "series", "startTime": _iso(start), "endTime": _iso(end)}
    )

    def finished() -> dict[str, Any] | None:
        body = sdk.get_evaluation(evaluation_id, start_time=start, end_time=end)
        return body if body["status"] != "Running" else None

    evaluation = wait_until(finished, 60, "evaluation finished")
    assert evaluation["status"] == "Succeeded", evaluation
    for policy in evaluation["content"]["value"]:
        points = policy["timeseries"]["data"]
        assert points, f"{policy['name']}: no timeseries point in [{start}, {end})"
        first = datetime.fromisoformat(points[0]["timeStamp"])
        assert first <= start, f"{policy['name']}: the bucket of the first event is missing"
        assert points[-1]["expectedReward"] == pytest.approx(policy["summary"]["expectedReward"])
