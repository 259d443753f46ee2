"""logs and logs/properties (admin key)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.common import authorize
from app.store import logs


async def delete_logs(request: Request) -> Response:
    svc = authorize(request, admin=True)
    await logs.delete_all(svc.engine)
    return Response(status_code=204)


async def log_properties(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    first, last = await logs.date_range(svc.engine)
    late = await logs.late_rewards(svc.engine, svc.rules.wait)
    return JSONResponse(
        {
            "dateRange": {
                "from": first.isoformat() if first else None,
                "to": last.isoformat() if last else None,
            },
            "lateRewards": late,  # ours: rewards stored after their wait time, not learned
        }
    )
