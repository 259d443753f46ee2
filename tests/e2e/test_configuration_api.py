"""configurations/service and configurations/policy over HTTP with the admin key.

Personalizer's rules: durations are ISO 8601 on the way out (`hh:mm:ss` accepted on the way in);
invalid values are refused with 400 and the inner code; `learningMode` cannot change in the
same call as a reward setting; a change to the reward settings or to `explorationPercentage`
(and a new policy) starts a fresh model, visible as a new policy id in `/healthz`'s
`modelVersion` ("<policyId>.<eventsLearned>").

The module shares one server: an autouse fixture puts the first document and the default
policy back after every test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Server, rank_body

DEFAULT_ARGUMENTS = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::"
SERVICE, POLICY = "/configurations/service", "/configurations/policy"
QUERY_VERSION = "?api-version=2022-09-01-preview"
ISO_DURATION = re.compile(r"^P(?=\d|T\d)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
# What a PUT must carry (Personalizer's required fields), at their default values.
BASE: dict[str, Any] = {
    "rewardWaitTime": "PT10M",
    "defaultReward": 0,
    "rewardAggregation": "earliest",
    "explorationPercentage": 0.2,
    "modelExportFrequency": "PT5S",
    "logRetentionDays": 90,
    "learningMode": "Online",
}
DROP = object()
DATES = ("lastConfigurationEditDate", "autoOptimizationStartDate")


def _with(changes: dict[str, Any]) -> dict[str, Any]:
    body = dict(BASE)
    for key, value in changes.items():
        if value is DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


def _health(server: Server) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/healthz", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _policy_id(server: Server) -> str:
    version = _health(server)["modelVersion"]
    assert re.fullmatch(r"\d+\.\d+", version), version
    return version.split(".")[0]


def _get(server: Server, path: str) -> dict[str, Any]:
    with server.admin() as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def _put(server: Server, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with server.admin() as c:
        return c.put(path, content=content, headers={"Content-Type": "application/json"})


def _assert_error(r: httpx.Response, inner: str) -> None:
    assert r.status_code == 400, f"{r.status_code}: {r.text[:500]}"
    error = r.json()["error"]
    assert error["code"] == "BadRequest", error
    assert error["innerError"]["code"] == inner, error
    assert isinstance(error["message"], str) and error["message"].strip(), error


@pytest.fixture(scope="module")
def initial_document(server: Server) -> dict[str, Any]:
    """The service configuration of the new loop, read before any test changes it."""
    return _get(server, SERVICE)


@pytest.fixture(autouse=True)
def restore_defaults(server: Server, initial_document: dict[str, Any]) -> Iterator[None]:
    yield
    doc = _get(server, SERVICE)
    if doc["learningMode"] != initial_document["learningMode"]:
        # learningMode first, alone: it may not change together with a reward setting.
        body = {**doc, "learningMode": initial_document["learningMode"]}
        assert _put(server, SERVICE, body).status_code == 200
        doc = _get(server, SERVICE)
    target = {key: value for key, value in initial_document.items() if key not in DATES}
    if any(doc[key] != value for key, value in target.items()):
        r = _put(server, SERVICE, {**doc, **target})
        assert r.status_code == 200, r.text
    if _get(server, POLICY)["arguments"] != DEFAULT_ARGUMENTS:
        with server.admin() as c:
            assert c.delete(POLICY).status_code == 200


# -- the defaults ----------------------------------------------------------------------------


def test_default_service_document(server: Server, initial_document: dict[str, Any]) -> None:
    doc = initial_document
    assert doc["rewardWaitTime"] == "PT10M"
    assert doc["defaultReward"] == 0 and not isinstance(doc["defaultReward"], bool)
    assert doc["rewardAggregation"] == "earliest"
    assert doc["explorationPercentage"] == 0.2
    assert doc["learningMode"] == "Online"
    assert doc["logRetentionDays"] == 90
    for key in ("rewardWaitTime", "modelExportFrequency", "autoOptimizationFrequency"):
        assert ISO_DURATION.match(doc[key]), (key, doc[key])
    assert _health(server)["learningMode"] == "Online"
    assert _get(server, SERVICE) == doc


def test_default_policy(server: Server) -> None:
    policy = _get(server, POLICY)
    assert set(policy) == {"name", "arguments"}
    assert policy["arguments"] == DEFAULT_ARGUMENTS
    assert isinstance(policy["name"], str) and policy["name"]
    assert _health(server)["policy"] == policy["name"]


def test_query_versioned_paths_serve_the_same_configuration(server: Server) -> None:
    v1 = _get(server, SERVICE)
    with httpx.Client(
        base_url=f"{server.url}/personalizer",
        headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY},
        timeout=30,
    ) as c:
        service = c.get(SERVICE + QUERY_VERSION)
        policy = c.get(POLICY + QUERY_VERSION)
        assert service.status_code == 200 and policy.status_code == 200
        assert service.json() == v1
        assert policy.json() == _get(server, POLICY)
        before = _policy_id(server)
        put = c.put(SERVICE + QUERY_VERSION, json={**v1, "modelExportFrequency": "PT7S"})
        assert put.status_code == 200, put.text
        assert put.json()["modelExportFrequency"] == "PT7S"
        missing = c.get(SERVICE)
        assert missing.status_code == 400
        assert missing.json()["error"]["innerError"]["code"] == "InvalidApiVersion"
    assert _get(server, SERVICE)["modelExportFrequency"] == "PT7S"
    assert _policy_id(server) == before


# -- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("00:00:30", "PT30S"),
        ("00:00:05", "PT5S"),
        ("04:00:00", "PT4H"),
        ("01:30:00", "PT1H30M"),
        ("1.00:00:00", "P1D"),
        ("2.00:00:00", "P2D"),
        ("PT45S", "PT45S"),
        ("P1DT12H", "P1DT12H"),
    ],
)
def test_durations_come_back_as_iso_8601(server: Server, given: str, expected: str) -> None:
    r = _put(server, SERVICE, _with({"rewardWaitTime": given, "modelExportFrequency": "00:01:00"}))
    assert r.status_code == 200, r.text
    assert r.json()["rewardWaitTime"] == expected
    assert r.json()["modelExportFrequency"] == "PT1M"
    doc = _get(server, SERVICE)
    assert doc["rewardWaitTime"] == expected and doc["modelExportFrequency"] == "PT1M"


# -- invalid configurations ------------------------------------------------------------------

INVALID_SERVICE = [
    ("wait-4s", {"rewardWaitTime": "PT4S"}, "InvalidServiceConfiguration"),
    ("wait-4s-timespan", {"rewardWaitTime": "00:00:04"}, "InvalidServiceConfiguration"),
    ("wait-zero", {"rewardWaitTime": "PT0S"}, "InvalidServiceConfiguration"),
    ("wait-2-days-and-1s", {"rewardWaitTime": "P2DT1S"}, "InvalidServiceConfiguration"),
    ("wait-3-days-timespan", {"rewardWaitTime": "3.00:00:00"}, "InvalidServiceConfiguration"),
    ("wait-words", {"rewardWaitTime": "ten minutes"}, "InvalidServiceConfiguration"),
    ("wait-bare-pt", {"rewardWaitTime": "PT"}, "InvalidServiceConfiguration"),
    ("wait-25-hours-timespan", {"rewardWaitTime": "25:00:00"}, "InvalidServiceConfiguration"),
    ("wait-61-minutes-timespan", {"rewardWaitTime": "00:61:00"}, "InvalidServiceConfiguration"),
    ("wait-number", {"rewardWaitTime": 600}, "InvalidServiceConfiguration"),
    ("export-words", {"modelExportFrequency": "soon"}, "InvalidServiceConfiguration"),
    ("default-reward-2", {"defaultReward": 2}, "InvalidServiceConfiguration"),
    ("default-reward-minus-1.5", {"defaultReward": -1.5}, "InvalidServiceConfiguration"),
    ("default-reward-string", {"defaultReward": "0"}, "InvalidServiceConfiguration"),
    ("default-reward-bool", {"defaultReward": True}, "InvalidServiceConfiguration"),
    ("aggregation-unknown", {"rewardAggregation": "latest"}, "InvalidServiceConfiguration"),
    ("aggregation-number", {"rewardAggregation": 1}, "InvalidServiceConfiguration"),
    ("exploration-1.5", {"explorationPercentage": 1.5}, "InvalidServiceConfiguration"),
    ("exploration-negative", {"explorationPercentage": -0.1}, "InvalidServiceConfiguration"),
    ("retention-0", {"logRetentionDays": 0}, "InvalidLogRetentionDays"),
    ("retention-1-below-wait-plus-a-day", {"logRetentionDays": 1}, "InvalidLogRetentionDays"),
    (
        "retention-2-with-2-day-wait",
        {"rewardWaitTime": "P2D", "logRetentionDays": 2},
        "InvalidLogRetentionDays",
    ),
    ("retention-minus-2", {"logRetentionDays": -2}, "InvalidLogRetentionDays"),
    ("retention-fraction", {"logRetentionDays": 90.5}, "InvalidLogRetentionDays"),
    ("learning-mode-unknown", {"learningMode": "Sometimes"}, "InvalidServiceConfiguration"),
    *(
        (f"missing-{key}", {key: DROP}, "InvalidServiceConfiguration")
        for key in BASE
        if key != "learningMode"
    ),
    ("null-defaultReward", {"defaultReward": None}, "InvalidServiceConfiguration"),
]


@pytest.mark.parametrize(
    ("body", "inner"),
    [pytest.param(_with(changes), inner, id=case_id) for case_id, changes, inner in INVALID_SERVICE]
    + [
        pytest.param([BASE], "InvalidServiceConfiguration", id="body-not-object"),
        pytest.param(b'{"rewardWaitTime": "PT10M",', "InvalidServiceConfiguration", id="bad-json"),
        pytest.param(b"", "InvalidServiceConfiguration", id="empty-body"),
        pytest.param(
            json.dumps(BASE).replace('"defaultReward": 0', '"defaultReward": NaN').encode(),
            "InvalidServiceConfiguration",
            id="default-reward-nan",
        ),
        pytest.param(
            json.dumps(BASE)
            .replace('"defaultReward": 0', '"defaultReward": 1' + "0" * 400)
            .encode(),
            "InvalidServiceConfiguration",
            id="default-reward-huge-integer",
        ),
    ],
)
def test_invalid_service_configuration_is_refused(
    server: Server, db, body: Any, inner: str
) -> None:
    before, policy_id = _get(server, SERVICE), _policy_id(server)
    stored = db.execute("SELECT document, updated_at FROM service_config").fetchall()

    r = _put(server, SERVICE, body)

    assert r.status_code < 500, r.text
    _assert_error(r, inner)
    assert _get(server, SERVICE) == before
    assert db.execute("SELECT document, updated_at FROM service_config").fetchall() == stored
    assert _policy_id(server) == policy_id


# -- learning mode and fresh models ----------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"learningMode": "Apprentice", "defaultReward": 0.5},
        {"learningMode": "Apprentice", "rewardWaitTime": "PT20M"},
        {"learningMode": "LoggingOnly", "rewardAggregation": "sum"},
        {"learningMode": "Apprentice", "defaultReward": -1, "rewardWaitTime": "PT5S"},
    ],
    ids=["default-reward", "wait-time", "aggregation", "all-three"],
)
def test_learning_mode_cannot_change_with_a_reward_setting(
    server: Server, changes: dict[str, Any]
) -> None:
    before, policy_id = _get(server, SERVICE), _policy_id(server)
    r = _put(server, SERVICE, _with(changes))
    _assert_error(r, "InvalidLearningModeServiceConfiguration")
    assert _get(server, SERVICE) == before
    assert _health(server)["learningMode"] == "Online"
    assert _policy_id(server) == policy_id


@pytest.mark.parametrize("mode", ["Apprentice", "LoggingOnly"])
def test_learning_mode_alone_changes_and_keeps_the_model(server: Server, mode: str) -> None:
    policy_id = _policy_id(server)
    r = _put(server, SERVICE, _with({"learningMode": mode}))
    assert r.status_code == 200, r.text
    assert r.json()["learningMode"] == mode
    assert _get(server, SERVICE)["learningMode"] == mode
    assert _health(server)["learningMode"] == mode
    assert _policy_id(server) == policy_id
    back = _put(server, SERVICE, _with({"learningMode": "Online"}))
    assert back.status_code == 200, back.text
    assert _health(server)["learningMode"] == "Online"
    assert _policy_id(server) == policy_id


def test_learning_mode_may_change_when_reward_settings_are_only_respelled(server: Server) -> None:
    """`00:10:00` is PT10M, `Earliest` is earliest, 0.0 is 0: no reward setting changes."""
    policy_id = _policy_id(server)
    body = _with(
        {
            "learningMode": "Apprentice",
            "rewardWaitTime": "00:10:00",
            "rewardAggregation": "Earliest",
            "defaultReward": 0.0,
        }
    )
    r = _put(server, SERVICE, body)
    assert r.status_code == 200, r.text
    assert r.json()["rewardWaitTime"] == "PT10M"
    assert r.json()["rewardAggregation"] == "earliest"
    assert r.json()["learningMode"] == "Apprentice"
    assert _policy_id(server) == policy_id


@pytest.mark.parametrize(
    "changes",
    [
        {"defaultReward": 0.5},
        {"defaultReward": -1},
        {"rewardWaitTime": "PT20M"},
        {"rewardWaitTime": "00:00:30"},
        {"rewardAggregation": "sum"},
        {"rewardAggregation": "average"},
        {"explorationPercentage": 0.3},
        {"explorationPercentage": 0},
    ],
    ids=lambda changes: "-".join(f"{k}={v}" for k, v in changes.items()),
)
def test_reward_or_exploration_change_starts_a_fresh_model(
    server: Server, changes: dict[str, Any]
) -> None:
    policy = _get(server, POLICY)
    policy_id = _policy_id(server)
    r = _put(server, SERVICE, _with(changes))
    assert r.status_code == 200, r.text
    doc = _get(server, SERVICE)
    for key, value in changes.items():
        if key == "rewardWaitTime":
            assert ISO_DURATION.match(doc[key]) and doc[key] != BASE[key]
        else:
            assert doc[key] == value
    version = _health(server)["modelVersion"]
    new_id, learned = version.split(".")
    assert new_id != policy_id
    assert learned == "0"
    assert _get(server, POLICY) == policy  # the same policy, a fresh model


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"modelExportFrequency": "PT10S"},
        {"logRetentionDays": 30},
        {"logRetentionDays": -1},
        {"rewardWaitTime": "00:10:00"},
        {"rewardAggregation": "EARLIEST"},
        {"learningMode": "Apprentice"},
        {"isInferenceExplainabilityEnabled": True},
    ],
    ids=lambda changes: "-".join(f"{k}={v}" for k, v in changes.items()) or "unchanged",
)
def test_other_changes_keep_the_model(server: Server, changes: dict[str, Any]) -> None:
    policy_id = _policy_id(server)
    r = _put(server, SERVICE, _with(changes))
    assert r.status_code == 200, r.text
    assert _policy_id(server) == policy_id
    for key in ("defaultReward", "explorationPercentage"):
        assert r.json()[key] == BASE[key]


# -- the policy -------------------------------------------------------------------------------

VALID_ARGUMENTS = "--cb_explore_adf --epsilon 0.1 --power_t 0 -l 0.01 --cb_type ips -q ::"

INVALID_POLICY = [
    (
        "no-cb-explore-adf",
        {"arguments": "--epsilon 0.2 --cb_type mtr"},
        "InvalidPolicyConfiguration",
    ),
    ("cb-adf-only", {"arguments": "--cb_adf --epsilon 0.2"}, "InvalidPolicyConfiguration"),
    ("data-file", {"arguments": "--cb_explore_adf -d train.dat"}, "InvalidPolicyConfiguration"),
    ("data-long", {"arguments": "--cb_explore_adf --data=x.dat"}, "InvalidPolicyConfiguration"),
    ("save-resume", {"arguments": "--cb_explore_adf --save_resume"}, "InvalidPolicyConfiguration"),
    ("final-regressor", {"arguments": "--cb_explore_adf -f m.vw"}, "InvalidPolicyConfiguration"),
    ("initial-regressor", {"arguments": "--cb_explore_adf -i m.vw"}, "InvalidPolicyConfiguration"),
    ("json", {"arguments": "--cb_explore_adf --json"}, "InvalidPolicyConfiguration"),
    (
        "invert-hash",
        {"arguments": "--cb_explore_adf --invert_hash x"},
        "InvalidPolicyConfiguration",
    ),
    (
        "unknown-option",
        {"arguments": "--cb_explore_adf --no_such_option 3"},
        "InvalidPolicyConfiguration",
    ),
    (
        "bad-option-value",
        {"arguments": "--cb_explore_adf --epsilon lots"},
        "InvalidPolicyConfiguration",
    ),
    (
        "unbalanced-quote",
        {"arguments": '--cb_explore_adf --epsilon "0.2'},
        "InvalidPolicyConfiguration",
    ),
    (
        "arguments-1025-chars",
        {"arguments": ("--cb_explore_adf " + "-q ab " * 200)[:1025]},
        "InvalidPolicyConfiguration",
    ),
    ("empty-arguments", {"arguments": ""}, "InvalidPolicyConfiguration"),
    ("missing-arguments", {"arguments": DROP}, "InvalidPolicyConfiguration"),
    ("arguments-not-string", {"arguments": 7}, "InvalidPolicyConfiguration"),
    ("name-257-chars", {"name": "n" * 257}, "InvalidPolicyContract"),
    ("missing-name", {"name": DROP}, "InvalidPolicyContract"),
    ("empty-name", {"name": ""}, "InvalidPolicyContract"),
    ("blank-name", {"name": "   "}, "InvalidPolicyContract"),
    ("name-not-string", {"name": 5}, "InvalidPolicyContract"),
]


def _policy_body(changes: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "custom", "arguments": VALID_ARGUMENTS}
    for key, value in changes.items():
        if value is DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("body", "inner"),
    [pytest.param(_policy_body(c), inner, id=case_id) for case_id, c, inner in INVALID_POLICY]
    + [
        pytest.param(["custom", VALID_ARGUMENTS], "InvalidPolicyContract", id="body-not-object"),
        pytest.param(b'{"name": "custom", ', "InvalidPolicyContract", id="bad-json"),
    ],
)
def test_invalid_policy_is_refused(server: Server, db, body: Any, inner: str) -> None:
    before, policy_id = _get(server, POLICY), _policy_id(server)
    rows = db.execute("SELECT id, name, arguments, role FROM policies ORDER BY id").fetchall()

    r = _put(server, POLICY, body)

    assert r.status_code < 500, r.text
    _assert_error(r, inner)
    assert _get(server, POLICY) == before
    assert _policy_id(server) == policy_id
    assert (
        db.execute("SELECT id, name, arguments, role FROM policies ORDER BY id").fetchall() == rows
    )


@pytest.mark.parametrize("name", ["custom-ips", "p" * 256], ids=["short-name", "name-256-chars"])
def test_valid_policy_is_served_from_a_fresh_model(server: Server, db, name: str) -> None:
    policy_id = _policy_id(server)
    body = {"name": name, "arguments": VALID_ARGUMENTS}
    r = _put(server, POLICY, body)
    assert r.status_code == 200, r.text
    assert r.json() == body
    assert _get(server, POLICY) == body
    health = _health(server)
    assert health["policy"] == name
    new_id, learned = health["modelVersion"].split(".")
    assert new_id != policy_id and learned == "0"
    # The new policy ranks, and its decisions say so.
    with server.client() as c:
        ranked = c.post("/rank", json=rank_body(f"policy-{new_id}"))
    assert ranked.status_code == 201, ranked.text
    row = db.execute(
        "SELECT policy_name FROM decisions WHERE event_id = %s", (f"policy-{new_id}",)
    ).fetchone()
    assert row == (name,)


def test_delete_policy_returns_and_serves_the_default(server: Server) -> None:
    assert _put(server, POLICY, {"name": "custom", "arguments": VALID_ARGUMENTS}).status_code == 200
    custom_id = _policy_id(server)
    with server.admin() as c:
        r = c.delete(POLICY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"name", "arguments"}
    assert body["arguments"] == DEFAULT_ARGUMENTS
    assert isinstance(body["name"], str) and body["name"]
    assert _get(server, POLICY) == body
    assert _health(server)["policy"] == body["name"]
    assert _policy_id(server) != custom_id
    # Resetting the default again is allowed, and again starts a fresh model.
    default_id = _policy_id(server)
    with server.admin() as c:
        again = c.delete(POLICY)
    assert again.status_code == 200 and again.json() == body
    assert _policy_id(server) != default_id


def test_policy_put_and_delete_on_the_query_versioned_path(server: Server) -> None:
    with httpx.Client(
        base_url=f"{server.url}/personalizer",
        headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY},
        timeout=30,
    ) as c:
        body = {"name": "query-versioned", "arguments": VALID_ARGUMENTS}
        put = c.put(POLICY + QUERY_VERSION, json=body)
        assert put.status_code == 200 and put.json() == body
        assert c.get(POLICY + QUERY_VERSION).json() == body
        reset = c.delete(POLICY + QUERY_VERSION)
        assert reset.status_code == 200
        assert reset.json()["arguments"] == DEFAULT_ARGUMENTS
