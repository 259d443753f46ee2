"""GET /healthz (no key): is the database reachable, which policy and model serve."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.api.common import service
from app.store.db import ping


async def healthz(request: Request) -> JSONResponse:
    svc = service(request)
    database = "reachable" if await ping(svc.engine, svc.settings.db_timeout) else "unreachable"
    model = svc.serving
    body = {
        "status": "ok" if database == "reachable" else "degraded",
        "database": database,
        "policy": model.row.name,
        "policyId": model.row.id,
        "modelVersion": model.version,
        "eventsLearned": model.events_learned,
        "position": model.cursor,
        "learningMode": svc.rules.learning_mode,
        "pid": os.getpid(),
        "role": svc.role,
    }
    return JSONResponse(body, status_code=200 if database == "reachable" else 503)
