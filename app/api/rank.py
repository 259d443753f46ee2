"""POST rank: decide, log the decision durably, answer 201."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from app.api.common import FastJSONResponse, authorize, json_object, read_json
from app.errors import ApiError, bad_request
from app.store.writer import DecisionRow
from policies.features import (
    MAX_ID_LENGTH,
    Action,
    FeatureError,
    clean_features,
    has_features,
    is_plain_text,
    parse_actions,
)
from policies.ranking import Decision, decide
from policies.vw import Policy

INVALID = "InvalidRankRequest"


@dataclass(frozen=True)
class RankRequest:
    context: list[dict[str, Any]]
    actions: list[Action]
    excluded: list[str]
    event_id: str | None
    deferred: bool


def valid_event_id(event_id: Any, inner: str) -> str:
    if not isinstance(event_id, str) or not event_id.strip():
        raise bad_request(inner, "EventId should be non-empty or null.")
    if len(event_id) > MAX_ID_LENGTH:
        raise bad_request(inner, f"EventId must be at most {MAX_ID_LENGTH} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in event_id) or not is_plain_text(event_id):
        raise bad_request(inner, "EventId must not contain control characters or invalid Unicode.")
    return event_id


def parse_rank_request(body: Any) -> RankRequest:
    body = json_object(body, INVALID)
    try:
        if "contextFeatures" not in body or body["contextFeatures"] is None:
            raise FeatureError("contextFeatures is required: at least one context feature.")
        context = clean_features(body["contextFeatures"], "Context features")
        if not has_features(context):
            raise FeatureError("There must be at least one context feature.")
        if "actions" not in body:
            raise FeatureError("actions is required.")
        actions = parse_actions(body["actions"])
    except FeatureError as exc:
        raise bad_request(INVALID, str(exc)) from None
    excluded = body.get("excludedActions")
    if excluded is None:
        excluded = []
    if not isinstance(excluded, list) or not all(isinstance(x, str) for x in excluded):
        raise bad_request(INVALID, "excludedActions must be an array of action ids.")
    ids = {a.id for a in actions}
    excluded = list(dict.fromkeys(x for x in excluded if x in ids))
    if len(excluded) == len(actions):
        raise bad_request(INVALID, "Every action is excluded; at least one must remain.")
    event_id = body.get("eventId")
    if event_id is not None:
        event_id = valid_event_id(event_id, INVALID)
    deferred = body.get("deferActivation")
    if deferred is None:
        deferred = False
    if not isinstance(deferred, bool):
        raise bad_request(INVALID, "deferActivation must be true or false.")
    return RankRequest(context, actions, excluded, event_id, deferred)


def request_hash(req: RankRequest, event_id: str) -> str:
    """Digest of what the request means (defaults filled in, ignored names dropped), so a
    retry that spells the same request differently still matches its logged decision."""
    meaning = {
        "context": req.context,
        "actions": [[a.id, a.features] for a in req.actions],
        "excluded": sorted(req.excluded),
        "deferred": req.deferred,
        "eventId": event_id,
    }
    # json, not orjson: their float spellings differ (1e-05 / 0.00001), and a retry must match
    # the digest an earlier version logged
    canonical = json.dumps(meaning, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Ranked:
    """A rank request decided, before anything is logged."""

    request: RankRequest
    event_id: str
    digest: str
    decision: Decision
    ranking: list[dict[str, Any]]


def rank_body(body: Any, policy: Policy, learning_mode: str) -> Ranked:
    """Parse and clean a rank body, digest it, and let `policy` decide (no I/O)."""
    req = parse_rank_request(body)
    event_id = req.event_id or str(uuid.uuid4())
    digest = request_hash(req, event_id)
    decision = decide(policy, req.context, req.actions, set(req.excluded), event_id, learning_mode)
    ranking = [{"id": action_id, "probability": p} for action_id, p in decision.ranking]
    return Ranked(req, event_id, digest, decision, ranking)


def answer(event_id: str, ranking: list[dict[str, Any]]) -> FastJSONResponse:
    body = {"ranking": ranking, "eventId": event_id, "rewardActionId": ranking[0]["id"]}
    return FastJSONResponse(body, status_code=201)


async def rank(request: Request) -> FastJSONResponse:
    svc = authorize(request)
    body = await read_json(request, svc.settings.max_body_bytes, INVALID)
    model = svc.serving
    mode = svc.rules.learning_mode
    ranked = rank_body(body, model.policy, mode)
    req, decision = ranked.request, ranked.decision
    event_id, digest = ranked.event_id, ranked.digest
    row = DecisionRow(
        event_id=event_id,
        request_hash=digest,
        context=req.context,
        actions=[{"id": a.id, "features": a.features} for a in req.actions],
        excluded=req.excluded,
        ranking=ranked.ranking,
        reward_action=decision.reward_action,
        probability=decision.probability,
        policy_action=decision.policy_action,
        policy_probability=decision.policy_probability,
        example=decision.example,
        reward_position=decision.reward_position,
        policy_position=decision.policy_position,
        policy_id=model.row.id,
        policy_name=model.row.name,
        model_version=model.version,
        learning_mode=mode,
        deferred=req.deferred,
    )
    if await svc.writer.add_decision(row):
        return answer(event_id, ranked.ranking)
    logged = await svc.writer.replay(event_id, [digest])
    if logged is None or logged.request_hash != digest:
        raise ApiError(
            409,
            "Conflict",
            f"A different rank request was already logged with eventId '{event_id}'.",
            "EventIdConflict",
        )
    return answer(event_id, logged.ranking)
