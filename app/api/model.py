"""model and model/properties (admin key): export, import, reset the champion's model."""

from __future__ import annotations

import hashlib
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.common import authorize, caller, read_body
from app.errors import bad_request
from app.store import configuration
from app.store.configuration import ChampionChange
from policies.arguments import with_epsilon
from policies.vw import ModelError, Policy


def _iso(moment: datetime) -> str:
    return moment.astimezone().isoformat()


async def export_model(request: Request) -> Response:
    svc = authorize(request, admin=True)
    if request.query_params.get("signed", "false").lower() == "true":
        raise bad_request(
            "InvalidRequest", "Signed model archives are not supported; ask with signed=false."
        )
    model = svc.serving
    return Response(
        model.policy.to_bytes(),
        media_type="application/octet-stream",
        headers={"x-model-version": model.version},
    )


async def import_model(request: Request) -> Response:
    svc = authorize(request, admin=True)
    body = await read_body(request, svc.settings.max_model_bytes)
    if not body:
        raise bad_request("InvalidModelImportFormat", "The body must be a VW model file.")
    champion = svc.serving.row
    try:
        Policy.load_checked(with_epsilon(champion.arguments, svc.rules.exploration), body)
    except ModelError as exc:
        raise bad_request("InvalidModelImportFormat", str(exc)) from None
    digest = {"modelSha256": hashlib.sha256(body).hexdigest(), "modelBytes": len(body)}
    await configuration.import_model(
        svc.engine, body, ChampionChange("import", caller(request), digest)
    )
    await svc.reload()
    return Response(status_code=204)


async def reset_model(request: Request) -> Response:
    svc = authorize(request, admin=True)
    champion = svc.serving.row
    await configuration.replace_champion(
        svc.engine, champion.name, champion.arguments, ChampionChange("resetModel", caller(request))
    )
    await svc.reload()
    return Response(status_code=204)


async def model_properties(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    created, modified = await configuration.model_properties(svc.engine, svc.serving.row.id)
    return JSONResponse({"creationTime": _iso(created), "lastModifiedTime": _iso(modified)})
