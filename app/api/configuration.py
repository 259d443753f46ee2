"""configurations/service and configurations/policy (admin key)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.api.common import authorize, caller, read_json, read_policy_contract
from app.errors import bad_request
from app.service import Service
from app.service_config import REWARD_SETTINGS, ConfigError, validate
from app.store import apprentice, configuration
from app.store.configuration import ChampionChange
from policies.arguments import DEFAULT_ARGUMENTS, DEFAULT_POLICY_NAME


async def _document(svc: Service) -> dict[str, Any]:
    document = dict(svc.document)
    apprentice_metrics = await apprentice.metrics(svc.engine)
    if apprentice_metrics is not None:
        document["latestApprenticeModeMetrics"] = apprentice_metrics
    return document


async def get_service(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    return JSONResponse(await _document(svc))


async def put_service(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    body = await read_json(request, svc.settings.max_body_bytes, "InvalidServiceConfiguration")
    try:
        change = validate(body, svc.document)
    except ConfigError as exc:
        raise bad_request(exc.inner, str(exc)) from None
    new_model = None
    if change.new_model:
        changed = {
            key: {"from": svc.document.get(key), "to": change.document.get(key)}
            for key in REWARD_SETTINGS
            if svc.document.get(key) != change.document.get(key)
        }
        new_model = ChampionChange("rewardSettings", caller(request), {"changed": changed})
    await configuration.save_config(svc.engine, change.document, new_model)
    await svc.reload()
    return JSONResponse(await _document(svc))


def _contract(name: str, arguments: str) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def get_policy(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    row = svc.serving.row
    return JSONResponse(_contract(row.name, row.arguments))


async def put_policy(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    name, arguments = await read_policy_contract(request, svc.settings.max_body_bytes)
    await configuration.replace_champion(
        svc.engine, name, arguments, ChampionChange("policy", caller(request))
    )
    await svc.reload()
    return JSONResponse(_contract(name, arguments))


async def reset_policy(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    await configuration.replace_champion(
        svc.engine,
        DEFAULT_POLICY_NAME,
        DEFAULT_ARGUMENTS,
        ChampionChange("resetPolicy", caller(request)),
    )
    await svc.reload()
    return JSONResponse(_contract(DEFAULT_POLICY_NAME, DEFAULT_ARGUMENTS))
