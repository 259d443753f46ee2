"""/admin/policies: challengers in shadow, their running estimates, promotion and rollback."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.common import (
    authorize,
    caller,
    json_object,
    parse_json,
    read_body,
    read_policy_contract,
)
from app.errors import ApiError, bad_request, conflict, not_found
from app.promotion import promote, rollback, shadow_verdict
from app.store import roles
from app.store.configuration import model_version
from app.store.roles import RoleError
from policies.moments import MeanMoments, Moments


def _role_error(exc: RoleError) -> ApiError:
    if exc.reason == "missing":
        return not_found(str(exc), "PolicyNotFound")
    inner = {
        "name": "PolicyNameConflict",
        "limit": "TooManyChallengers",
        "champion": "PolicyIsChampion",
        "changed": "ChampionChanged",
        "nothing": "NothingToRollBack",
    }.get(exc.reason, "Conflict")
    return conflict(inner, str(exc))


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _estimates(sums: dict[str, float] | None) -> dict[str, Any] | None:
    """Running IPS/SNIPS (Gaussian 95%) from the policy's progressive-validation scores."""
    if not sums or not sums.get("n"):
        return None
    moments = Moments(
        int(sums["n"]),
        sums["sum_w"],
        sums["sum_w2"],
        sums["sum_wr"],
        sums["sum_wr2"],
        sums["sum_w2r"],
    )
    estimates: dict[str, Any] = {
        "events": moments.n,
        "ips": moments.ips().to_json(),
        "snips": moments.snips().to_json() if moments.sum_w > 0 else None,
        "effectiveSampleSize": _number(moments.effective_sample_size),
    }
    if sums.get("paired_n"):
        paired = MeanMoments(int(sums["paired_n"]), sums["paired_sum"], sums["paired_sum_sq"])
        estimates["differenceFromChampion"] = {"events": paired.n, **paired.interval().to_json()}
    return estimates


def _view(info: roles.PolicyInfo, sums: dict[str, float] | None) -> dict[str, Any]:
    """A policy as of its newest snapshot (what every worker reads alike)."""
    return {
        "name": info.name,
        "role": info.role,
        "arguments": info.arguments,
        "createdAt": info.created_at.isoformat(),
        "modelVersion": model_version(info.id, info.events_learned),
        "eventsLearned": info.events_learned,
        "eventsRefused": info.events_refused,
        "position": info.cursor,
        "estimates": _estimates(sums) if info.role != "retired" else None,
    }


async def list_policies(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    infos = await roles.list_policies(svc.engine)
    champion = next(i for i in infos if i.role == "champion")
    sums = await roles.score_sums(svc.engine, champion.id)
    return JSONResponse({"value": [_view(i, sums.get(i.id)) for i in infos]})


async def add_policy(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    name, arguments = await read_policy_contract(request, svc.settings.max_body_bytes)
    try:
        added = await roles.add_challenger(svc.engine, name, arguments)
    except RoleError as exc:
        raise _role_error(exc) from None
    await svc.reload()
    info = next(i for i in await roles.list_policies(svc.engine) if i.id == added)
    return JSONResponse(_view(info, None), status_code=201)


async def retire_policy(request: Request) -> Response:
    svc = authorize(request, admin=True)
    try:
        await roles.retire(svc.engine, request.path_params["name"])
    except RoleError as exc:
        raise _role_error(exc) from None
    await svc.reload()
    return Response(status_code=204)


async def promote_policy(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    force = False
    raw = await read_body(request, svc.settings.max_body_bytes)
    if raw.strip():
        body = json_object(parse_json(raw, "InvalidRequest"), "InvalidRequest")
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise bad_request("InvalidRequest", "force must be true or false.")
    try:
        challenger, champion = await roles.challenger_named(svc.engine, request.path_params["name"])
        verdict = await shadow_verdict(svc, challenger, champion)
        outcome = await promote(
            svc,
            verdict,
            policy_id=challenger,
            policy_name=request.path_params["name"],
            champion_id=champion,
            force=force,
            key_id=caller(request),
            source="admin",
        )
    except RoleError as exc:
        raise _role_error(exc) from None
    if not outcome.promoted:
        raise conflict(
            "PromotionRefused",
            "The evidence does not show the challenger is better: " + "; ".join(verdict.reasons),
            outcome.to_json(),
        )
    return JSONResponse(outcome.to_json())


async def rollback_champion(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    try:
        audit = await rollback(svc, caller(request))
    except RoleError as exc:
        raise _role_error(exc) from None
    names = {i.id: i.name for i in await roles.list_policies(svc.engine)}
    return JSONResponse({"champion": names[audit.policy_id], "replaced": names[audit.previous_id]})


async def list_promotions(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    rows = await roles.audit_rows(svc.engine)
    return JSONResponse(
        {
            "value": [
                {
                    "id": r["id"],
                    "at": r["at"].isoformat(),
                    "action": r["action"],
                    "forced": r["forced"],
                    "source": r["source"],
                    "key": r["key_id"],
                    "policy": r["policy_name"],
                    "previousChampion": r["previous"],
                    "evaluationId": r["evaluation_id"],
                    "evidence": r["evidence"],
                }
                for r in rows
            ]
        }
    )
