"""POST rank: decide, log the decision durably, answer 201."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from starlette.requests import Request

from app.api.common import FastJSONResponse, authorize, json_object, parse_json, read_body
from app.errors import ApiError, bad_request
from app.store.batch_statements import DecisionRow
from policies import codec
from policies.features import (
    MAX_ACTIONS,
    MAX_ID_LENGTH,
    Action,
    FeatureError,
    clean_features,
    has_features,
    is_plain_text,
    names_allowed,
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


# The body as the fast path decodes it (msgspec, one pass, in C): every feature value typed as
# the rules allow it (text, a 64-bit integer, a finite number, a boolean, an array of numbers;
# namespaces, two levels deep, in the context and, in the second form, in actions too), so only
# names are left to check. A null or anything else fails the decoding; the full path answers.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Array = list[_Int | float]
_Flat = dict[str, str | _Int | float | bool | _Array]
_Namespace = dict[str, str | _Int | float | bool | _Array | _Flat]
_Object = dict[str, str | _Int | float | bool | _Array | _Namespace]


class _FlatAction(Action, frozen=True):
    features: list[_Flat]


class _Action(Action, frozen=True):
    features: list[_Object]


class _FlatRankBody(msgspec.Struct):
    actions: list[_FlatAction]
    contextFeatures: list[_Object]
    excludedActions: list[str] | None = None
    eventId: str | None = None
    deferActivation: bool | None = None


class _RankBody(_FlatRankBody):
    actions: list[_Action]  # type: ignore[assignment]


_decode_flat = msgspec.json.Decoder(_FlatRankBody).decode
_decode_namespaced = msgspec.json.Decoder(_RankBody).decode


def read_rank_request(raw: bytes) -> RankRequest:
    """The rank request in the body `raw`: what `parse_rank_request(parse_json(raw))` returns,
    or the 400 it raises. Most bodies need no cleaning and break no rule: they are decoded and
    checked in one pass (msgspec) and used as they are, with no copy; any other body, or any
    doubt, takes the full path, whose answers (messages included) are the reference."""
    request = _clean_request(raw)
    return request if request is not None else parse_rank_request(parse_json(raw, INVALID))


def _clean_request(raw: bytes) -> RankRequest | None:
    """The request when it passes every rule with nothing to clean; None otherwise."""
    # An escape may hide a NUL or a lone surrogate, `"_` start an ignored name: the full path
    # looks (and tells). The search for `"_` only runs when the body has an underscore at all.
    if b"\\u" in raw or (b"_" in raw and b'"_' in raw):
        return None
    try:
        body: _FlatRankBody = _decode_flat(raw)
        flat = True
    except msgspec.ValidationError:
        try:
            body = _decode_namespaced(raw)
            flat = False
        except msgspec.MsgspecError:
            return None
    except msgspec.MsgspecError:
        return None
    context = body.contextFeatures
    if not (names_allowed(context) and has_features(context)):
        return None
    actions = body.actions
    if not 1 <= len(actions) <= MAX_ACTIONS:
        return None
    ids: set[str] = set()
    for action in actions:
        action_id, features = action.id, action.features
        if not action_id.strip() or len(action_id) > MAX_ID_LENGTH or action_id in ids:
            return None
        ids.add(action_id)
        if not (names_allowed(features, namespaces=not flat) and has_features(features)):
            return None
    excluded = list(dict.fromkeys(x for x in body.excludedActions or () if x in ids))
    if len(excluded) == len(actions):
        return None
    event_id = body.eventId
    if event_id is not None:
        try:
            valid_event_id(event_id, INVALID)
        except ApiError:
            return None
    return RankRequest(context, list(actions), excluded, event_id, bool(body.deferActivation))


def _meaning(req: RankRequest, event_id: str) -> dict[str, Any]:
    """What the request means (defaults filled in, ignored names dropped)."""
    return {
        "context": req.context,
        "actions": [[a.id, a.features] for a in req.actions],
        "excluded": sorted(req.excluded),
        "deferred": req.deferred,
        "eventId": event_id,
    }


def request_hash(req: RankRequest, event_id: str) -> str:
    """Digest of what the request means, so a retry that spells the same request differently
    still matches its logged decision: "v2:" + SHA-256 of its JSON, keys sorted, by orjson."""
    canonical = codec.dumps(_meaning(req, event_id), sort_keys=True)
    return "v2:" + hashlib.sha256(canonical).hexdigest()


def legacy_request_hash(req: RankRequest, event_id: str) -> str:
    """The digest versions before "v2:" logged (the standard library's JSON, whose float
    spellings differ from orjson's: 1e-05 / 0.00001); a retry of such a decision matches it."""
    meaning = _meaning(req, event_id)
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


def rank_body(raw: bytes, policy: Policy, learning_mode: str) -> Ranked:
    """Read a rank body, digest it, and let `policy` decide (no I/O)."""
    req = read_rank_request(raw)
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
    raw = await read_body(request, svc.settings.max_body_bytes)
    model = svc.serving
    mode = svc.rules.learning_mode
    ranked = rank_body(raw, model.policy, mode)
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
    digests = [digest, legacy_request_hash(req, event_id)]
    logged = await svc.writer.replay(event_id, digests)
    if logged is None or logged.request_hash not in digests:
        raise ApiError(
            409,
            "Conflict",
            f"A different rank request was already logged with eventId '{event_id}'.",
            "EventIdConflict",
        )
    return answer(event_id, logged.ranking)
