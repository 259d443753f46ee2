"""The official Azure Personalizer Python SDKs, unchanged, against the real server.

Legacy `azure-cognitiveservices-personalizer` (msrest, `/personalizer/v1.0/...`) and
`azure-ai-personalizer` (azure-core, `/personalizer/...?api-version=2022-09-01-preview`): every
call goes through the SDK's own serialisation, status check and deserialisation, and what the
server acknowledged is checked in the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.ai.personalizer import PersonalizerAdministrationClient
from azure.ai.personalizer import PersonalizerClient as NewClient
from azure.cognitiveservices.personalizer import PersonalizerClient as LegacyClient
from azure.cognitiveservices.personalizer.models import (
    ErrorResponseException,
    PersonalizerError,
    RankableAction,
    RankedAction,
    RankRequest,
    RankResponse,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from msrest.authentication import CognitiveServicesCredentials
from msrest.exceptions import HttpOperationError

from tests.conftest import ADMIN_KEY, API_KEY, Server

DEFAULT_POLICY = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::"
CONTEXT = [{"user": {"tier": "gold", "visits": 3}}, {"device": {"os": "android"}}]
# Every character a URL path would otherwise read as structure: both SDKs percent-encode them.
AWKWARD_ID_CHARS = " /:?#+%&=ü"


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------


def legacy_client(server: Server, key: str = API_KEY) -> LegacyClient:
    client = LegacyClient(server.url, CognitiveServicesCredentials(key))
    client.config.retry_policy.retries = 0
    client.config.connection.timeout = 30
    return client


def new_client(server: Server, key: str = API_KEY) -> NewClient:
    return NewClient(server.url, AzureKeyCredential(key), retry_total=0, connection_timeout=30)


def admin_client(server: Server, key: str = ADMIN_KEY) -> PersonalizerAdministrationClient:
    return PersonalizerAdministrationClient(
        server.url, AzureKeyCredential(key), retry_total=0, connection_timeout=30
    )


@pytest.fixture(scope="module")
def legacy(server: Server) -> Iterator[LegacyClient]:
    client = legacy_client(server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[NewClient]:
    with new_client(server) as c:
        yield c


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[PersonalizerAdministrationClient]:
    with admin_client(server) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def legacy_actions(n: int = 4) -> list[RankableAction]:
    return [RankableAction(id=f"a{i}", features=[{"color": f"c{i}", "size": i}]) for i in range(n)]


def dict_actions(n: int = 4) -> list[dict[str, Any]]:
    return [{"id": f"a{i}", "features": [{"color": f"c{i}", "size": i}]} for i in range(n)]


def check_ranking(
    ranking: list[tuple[str, float]], reward_action_id: str, ids: list[str], excluded: list[str]
) -> None:
    """Personalizer's ranking contract: every action once, chosen first, excluded at 0."""
    assert sorted(i for i, _ in ranking) == sorted(ids)
    assert reward_action_id == ranking[0][0]
    assert reward_action_id not in excluded
    probabilities = dict(ranking)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    for action_id in excluded:
        assert probabilities[action_id] == 0.0
    assert probabilities[reward_action_id] > 0.0
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def legacy_error(legacy: LegacyClient, exc: HttpOperationError) -> PersonalizerError:
    """The error body parsed with the legacy SDK's own model (`ErrorResponse.error`)."""
    if isinstance(exc, ErrorResponseException):
        return exc.error.error
    parsed = legacy._deserialize("ErrorResponse", exc.response)
    assert parsed is not None, exc.response.text
    return parsed.error


def decision_row(db, event_id: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT ranking, excluded, deferred, context FROM decisions WHERE event_id = %s",
        (event_id,),
    ).fetchone()


def rewards_of(db, event_id: str) -> list[float]:
    rows = db.execute(
        "SELECT value FROM rewards WHERE event_id = %s ORDER BY id", (event_id,)
    ).fetchall()
    return [r[0] for r in rows]


def activations_of(db, event_id: str) -> int:
    return db.execute(
        "SELECT count(*) FROM activations WHERE event_id = %s", (event_id,)
    ).fetchone()[0]


def new_event_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


# ---------------------------------------------------------------------------------------------
# Legacy SDK: azure-cognitiveservices-personalizer 0.1.1, API v1.0
# ---------------------------------------------------------------------------------------------


def test_legacy_rank_reward_activate_with_explicit_event_id(legacy: LegacyClient, db) -> None:
    event_id = new_event_id("legacy")
    request = RankRequest(
        context_features=CONTEXT,
        actions=legacy_actions(4),
        excluded_actions=["a1"],
        event_id=event_id,
        defer_activation=True,
    )
    response = legacy.rank(request)

    assert isinstance(response, RankResponse)
    assert response.event_id == event_id
    assert all(isinstance(r, RankedAction) for r in response.ranking)
    ranking = [(r.id, r.probability) for r in response.ranking]
    check_ranking(ranking, response.reward_action_id, ["a0", "a1", "a2", "a3"], ["a1"])

    assert legacy.events.activate(event_id) is None
    assert legacy.events.reward(event_id, 0.75) is None

    row = decision_row(db, event_id)
    assert row is not None
    logged_ranking, excluded, deferred, context = row
    assert [(r["id"], r["probability"]) for r in logged_ranking] == ranking
    assert excluded == ["a1"]
    assert deferred is True
    assert context == CONTEXT
    assert rewards_of(db, event_id) == [0.75]
    assert activations_of(db, event_id) == 1


def test_legacy_rank_with_generated_event_id(legacy: LegacyClient, db) -> None:
    request = RankRequest(context_features=CONTEXT, actions=legacy_actions(3))
    response = legacy.rank(request)

    assert isinstance(response.event_id, str) and response.event_id
    ranking = [(r.id, r.probability) for r in response.ranking]
    check_ranking(ranking, response.reward_action_id, ["a0", "a1", "a2"], [])

    legacy.events.reward(response.event_id, 1.0)
    row = decision_row(db, response.event_id)
    assert row is not None
    assert row[2] is False  # the legacy SDK sends deferActivation: false by default
    assert rewards_of(db, response.event_id) == [1.0]

    again = legacy.rank(RankRequest(context_features=CONTEXT, actions=legacy_actions(3)))
    assert again.event_id != response.event_id


def test_legacy_reward_and_activate_for_unknown_event_raise_not_found(
    legacy: LegacyClient, db
) -> None:
    """The legacy SDK's events operations raise a bare `HttpOperationError` (rank raises its
    subclass `ErrorResponseException`); the body is still the SDK's `ErrorResponse` model."""
    event_id = new_event_id("legacy-unknown")
    with pytest.raises(HttpOperationError) as raised:
        legacy.events.reward(event_id, 1.0)
    assert raised.value.response.status_code == 404
    error = legacy_error(legacy, raised.value)
    assert error.code == "ResourceNotFound"
    assert error.message
    assert error.inner_error is not None and error.inner_error.code == "ResourceNotFound"

    with pytest.raises(HttpOperationError) as raised:
        legacy.events.activate(event_id)
    assert raised.value.response.status_code == 404
    assert legacy_error(legacy, raised.value).code == "ResourceNotFound"

    assert rewards_of(db, event_id) == []
    assert activations_of(db, event_id) == 0


def test_legacy_bad_requests_raise_with_parsed_error(legacy: LegacyClient) -> None:
    with pytest.raises(ErrorResponseException) as raised:
        legacy.rank(RankRequest(context_features=CONTEXT, actions=[]))
    assert raised.value.response.status_code == 400
    error = raised.value.error.error
    assert error.code == "BadRequest"
    assert error.inner_error is not None and error.inner_error.code == "InvalidRankRequest"

    ranked = legacy.rank(RankRequest(context_features=CONTEXT, actions=legacy_actions(2)))
    with pytest.raises(HttpOperationError) as raised:
        legacy.events.reward(ranked.event_id, 5.0)
    assert raised.value.response.status_code == 400
    error = legacy_error(legacy, raised.value)
    assert error.code == "BadRequest"
    assert error.inner_error.code == "InvalidRewardRequest"


def test_legacy_wrong_key_raises(server: Server, db) -> None:
    event_id = new_event_id("legacy-denied")
    bad = legacy_client(server, "not-the-key")
    try:
        with pytest.raises(ErrorResponseException) as raised:
            bad.rank(
                RankRequest(context_features=CONTEXT, actions=legacy_actions(2), event_id=event_id)
            )
        assert raised.value.response.status_code == 401
        assert raised.value.error.error.code == "Unauthorized"
    finally:
        bad.close()
    assert decision_row(db, event_id) is None


# ---------------------------------------------------------------------------------------------
# New SDK: azure-ai-personalizer 1.0.0b1, api-version 2022-09-01-preview
# ---------------------------------------------------------------------------------------------


def test_new_rank_and_reward_with_explicit_event_id(client: NewClient, db) -> None:
    event_id = new_event_id("new")
    response = client.rank(
        {
            "contextFeatures": CONTEXT,
            "actions": dict_actions(5),
            "excludedActions": ["a0", "a3"],
            "eventId": event_id,
        }
    )

    assert set(response) == {"ranking", "eventId", "rewardActionId"}
    assert response["eventId"] == event_id
    ranking = [(r["id"], r["probability"]) for r in response["ranking"]]
    check_ranking(ranking, response["rewardActionId"], [f"a{i}" for i in range(5)], ["a0", "a3"])

    assert client.reward(event_id, {"value": 0.25}) is None
    assert client.reward(event_id, {"value": -0.5}) is None

    row = decision_row(db, event_id)
    assert row is not None
    assert [(r["id"], r["probability"]) for r in row[0]] == ranking
    assert row[1] == ["a0", "a3"]
    assert row[2] is False
    assert rewards_of(db, event_id) == [0.25, -0.5]


def test_new_rank_with_generated_event_id(client: NewClient, db) -> None:
    response = client.rank({"contextFeatures": CONTEXT, "actions": dict_actions(3)})
    event_id = response["eventId"]
    assert isinstance(event_id, str) and event_id
    ranking = [(r["id"], r["probability"]) for r in response["ranking"]]
    check_ranking(ranking, response["rewardActionId"], ["a0", "a1", "a2"], [])

    client.reward(event_id, {"value": 1.0})
    assert decision_row(db, event_id) is not None
    assert rewards_of(db, event_id) == [1.0]


def test_new_deferred_rank_then_activate(client: NewClient, db) -> None:
    event_id = new_event_id("new-deferred")
    response = client.rank(
        {
            "contextFeatures": CONTEXT,
            "actions": dict_actions(3),
            "eventId": event_id,
            "deferActivation": True,
        }
    )
    assert response["eventId"] == event_id
    assert activations_of(db, event_id) == 0

    assert client.activate(event_id) is None
    assert client.reward(event_id, {"value": 1.0}) is None

    row = decision_row(db, event_id)
    assert row is not None and row[2] is True
    assert activations_of(db, event_id) == 1
    assert rewards_of(db, event_id) == [1.0]


def test_new_reward_and_activate_for_unknown_event_raise_404(client: NewClient, db) -> None:
    event_id = new_event_id("new-unknown")
    with pytest.raises(HttpResponseError) as raised:
        client.reward(event_id, {"value": 1.0})
    assert isinstance(raised.value, ResourceNotFoundError)
    assert raised.value.status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "ResourceNotFound"

    with pytest.raises(HttpResponseError) as raised:
        client.activate(event_id)
    assert raised.value.status_code == 404
    assert raised.value.error.code == "ResourceNotFound"

    assert rewards_of(db, event_id) == []
    assert activations_of(db, event_id) == 0


def test_new_bad_request_raises_400(client: NewClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.rank({"contextFeatures": CONTEXT, "actions": []})
    assert raised.value.status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "BadRequest"
    assert raised.value.error.message
    assert raised.value.response.headers.get("x-ms-error-code") == "InvalidRankRequest"

    with pytest.raises(HttpResponseError) as raised:
        client.rank({"actions": dict_actions(2)})  # no context features
    assert raised.value.status_code == 400
    assert raised.value.error.code == "BadRequest"


def test_new_wrong_key_raises(server: Server, db) -> None:
    event_id = new_event_id("new-denied")
    with new_client(server, "not-the-key") as bad, pytest.raises(HttpResponseError) as raised:
        bad.rank({"contextFeatures": CONTEXT, "actions": dict_actions(2), "eventId": event_id})
    assert isinstance(raised.value, ClientAuthenticationError)
    assert raised.value.status_code == 401
    assert decision_row(db, event_id) is None


# ---------------------------------------------------------------------------------------------
# Event ids that need percent-encoding in the reward/activate path, through both SDKs
# ---------------------------------------------------------------------------------------------


def test_event_ids_with_reserved_characters_round_trip(
    legacy: LegacyClient, client: NewClient, db
) -> None:
    legacy_id = f"legacy{AWKWARD_ID_CHARS}{uuid.uuid4()}"
    new_id = f"new{AWKWARD_ID_CHARS}{uuid.uuid4()}"

    ranked = legacy.rank(
        RankRequest(
            context_features=CONTEXT,
            actions=legacy_actions(2),
            event_id=legacy_id,
            defer_activation=True,
        )
    )
    assert ranked.event_id == legacy_id
    legacy.events.activate(legacy_id)
    legacy.events.reward(legacy_id, 0.5)

    answer = client.rank(
        {
            "contextFeatures": CONTEXT,
            "actions": dict_actions(2),
            "eventId": new_id,
            "deferActivation": True,
        }
    )
    assert answer["eventId"] == new_id
    client.activate(new_id)
    client.reward(new_id, {"value": 0.5})

    for event_id in (legacy_id, new_id):
        assert decision_row(db, event_id) is not None
        assert rewards_of(db, event_id) == [0.5]
        assert activations_of(db, event_id) == 1


# ---------------------------------------------------------------------------------------------
# New SDK administration client (admin key)
# ---------------------------------------------------------------------------------------------

SERVICE_FIELDS = (
    "rewardWaitTime", "defaultReward", "rewardAggregation", "explorationPercentage",
    "modelExportFrequency", "logRetentionDays",
)  # fmt: skip


def test_admin_service_configuration_round_trip(admin: PersonalizerAdministrationClient) -> None:
    original = admin.get_service_configuration()
    for key in SERVICE_FIELDS:
        assert original.get(key) is not None, key
    assert original["learningMode"] == "Online"

    changed = {**original, "explorationPercentage": 0.35, "logRetentionDays": 30}
    try:
        updated = admin.update_service_configuration(changed)
        assert updated["explorationPercentage"] == pytest.approx(0.35)
        assert updated["logRetentionDays"] == 30
        read_back = admin.get_service_configuration()
        assert read_back["explorationPercentage"] == pytest.approx(0.35)
        assert read_back["logRetentionDays"] == 30
        for key in ("rewardWaitTime", "defaultReward", "rewardAggregation"):
            assert read_back[key] == original[key], key
    finally:
        restored = admin.update_service_configuration(original)
    assert restored["explorationPercentage"] == pytest.approx(original["explorationPercentage"])
    assert restored["logRetentionDays"] == original["logRetentionDays"]


def test_admin_invalid_service_configuration_raises_400(
    admin: PersonalizerAdministrationClient,
) -> None:
    current = admin.get_service_configuration()
    with pytest.raises(HttpResponseError) as raised:
        admin.update_service_configuration({**current, "explorationPercentage": 1.5})
    assert raised.value.status_code == 400
    assert raised.value.error.code == "BadRequest"
    after = admin.get_service_configuration()
    assert after["explorationPercentage"] == current["explorationPercentage"]


def test_admin_policy_update_and_reset(admin: PersonalizerAdministrationClient) -> None:
    try:
        current = admin.get_policy()
        assert set(current) >= {"name", "arguments"}
        assert "--cb_explore_adf" in current["arguments"]

        custom = "--cb_explore_adf --epsilon 0.1 --power_t 0 -l 0.01 --cb_type mtr -q ::"
        updated = admin.update_policy({"name": "sdk-custom", "arguments": custom})
        assert updated["arguments"] == custom
        assert updated["name"]
        assert admin.get_policy()["arguments"] == custom

        reset = admin.reset_policy()
        assert reset["arguments"] == DEFAULT_POLICY
        assert reset["name"]
        assert admin.get_policy()["arguments"] == DEFAULT_POLICY
    finally:
        admin.reset_policy()


def test_admin_invalid_policy_raises_400(admin: PersonalizerAdministrationClient) -> None:
    before = admin.get_policy()
    with pytest.raises(HttpResponseError) as raised:
        admin.update_policy({"name": "bad", "arguments": "--cb_explore_adf -d /etc/passwd"})
    assert raised.value.status_code == 400
    assert raised.value.error.code == "BadRequest"
    assert admin.get_policy() == before


def test_admin_calls_need_the_admin_key(server: Server) -> None:
    with admin_client(server, API_KEY) as not_admin, pytest.raises(HttpResponseError) as raised:
        not_admin.get_policy()
    assert raised.value.status_code == 401
    with admin_client(server, "not-the-key") as bad, pytest.raises(HttpResponseError) as raised:
        bad.get_service_configuration()
    assert raised.value.status_code == 401


# ---------------------------------------------------------------------------------------------
# The same decision through both SDKs
# ---------------------------------------------------------------------------------------------


def test_same_decision_via_both_sdks(legacy: LegacyClient, client: NewClient, db) -> None:
    """The legacy SDK's exact JSON (it always sends `deferActivation: false`) sent again through
    the new SDK with the same eventId is a retry: the logged decision comes back."""
    event_id = new_event_id("both")
    first = legacy.rank(
        RankRequest(
            context_features=CONTEXT,
            actions=legacy_actions(6),
            excluded_actions=["a2"],
            event_id=event_id,
        )
    )
    second = client.rank(
        {
            "contextFeatures": CONTEXT,
            "actions": dict_actions(6),
            "excludedActions": ["a2"],
            "eventId": event_id,
            "deferActivation": False,
        }
    )
    assert second["eventId"] == first.event_id == event_id
    assert second["rewardActionId"] == first.reward_action_id
    assert [(r["id"], r["probability"]) for r in second["ranking"]] == [
        (r.id, r.probability) for r in first.ranking
    ]
    count = db.execute("SELECT count(*) FROM decisions WHERE event_id = %s", (event_id,))
    assert count.fetchone()[0] == 1


def test_same_decision_via_both_sdks_with_defaults_left_out(
    legacy: LegacyClient, client: NewClient, db
) -> None:
    """A new-SDK user writes the same request without the defaulted `deferActivation`, which the
    legacy SDK always adds; the request means the same, so the retry must replay the decision."""
    event_id = new_event_id("both-defaults")
    first = legacy.rank(
        RankRequest(context_features=CONTEXT, actions=legacy_actions(4), event_id=event_id)
    )
    second = client.rank(
        {"contextFeatures": CONTEXT, "actions": dict_actions(4), "eventId": event_id}
    )
    assert second["rewardActionId"] == first.reward_action_id
    assert [(r["id"], r["probability"]) for r in second["ranking"]] == [
        (r.id, r.probability) for r in first.ranking
    ]
    count = db.execute("SELECT count(*) FROM decisions WHERE event_id = %s", (event_id,))
    assert count.fetchone()[0] == 1


def test_conflicting_reuse_of_an_event_id_across_sdks_raises(
    legacy: LegacyClient, client: NewClient
) -> None:
    event_id = new_event_id("both-conflict")
    legacy.rank(RankRequest(context_features=CONTEXT, actions=legacy_actions(4), event_id=event_id))
    with pytest.raises(HttpResponseError) as raised:
        client.rank({"contextFeatures": CONTEXT, "actions": dict_actions(3), "eventId": event_id})
    assert raised.value.status_code == 409
    assert raised.value.error.code == "Conflict"
