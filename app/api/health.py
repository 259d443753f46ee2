"""Health: `/healthz` (is the database reachable, which policy and model serve), `/livez` (the
process answers; nothing else is looked at or revealed) and `/readyz` (can this process log a
decision now: its group-commit writer is connected and its last round trip, a batch or the probe
it sends every second when idle, came back within 5 s)."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.api.common import KEY_HEADER, service
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


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"status": "alive"})


async def readyz(request: Request) -> JSONResponse:
    svc = service(request)
    ready = svc.writer.ready
    body: dict[str, object] = {"status": "ready" if ready else "not ready"}
    if svc.keys.role(request.headers.get(KEY_HEADER)) == "admin":
        body.update(svc.writer.state(), pid=os.getpid(), role=svc.role)
    return JSONResponse(body, status_code=200 if ready else 503)
