"""The no-database reference: rank as the service does it, minus the log.

`python3 -m bench.reference [--port 8100] [--host 127.0.0.1] [--key K]`

A Starlette app with one route, `POST /personalizer/v1.0/rank`, that runs the real handler's
steps up to the decision: the key check (`authorize`), the bounded body (`read_json`), the
request parsing and feature cleaning (`parse_rank_request`), the request digest, and
`policies.ranking.decide` with the default policy at epsilon 0.2; it answers the same 201 JSON.
It writes nothing: no database, no decision row, no group commit. What a load run measures on
the real server beyond this one is the cost of logging the decision durably. Served by uvicorn
with the real server's options (`app.cli.serve`, one process).
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.common import authorize, read_json
from app.api.rank import INVALID, parse_rank_request, request_hash
from app.errors import HANDLERS
from app.keys import Keys
from app.settings import Settings
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.ranking import decide
from policies.vw import Policy

PATH = "/personalizer/v1.0/rank"
LEARNING_MODE = "Online"


@dataclass
class Reference:
    """What `authorize` and the handler need of the service: keys, settings, a policy."""

    keys: Keys
    settings: Settings
    policy: Policy


async def rank(request: Request) -> JSONResponse:
    authorize(request)
    ref: Reference = request.app.state.service
    body = await read_json(request, ref.settings.max_body_bytes, INVALID)
    req = parse_rank_request(body)
    event_id = req.event_id or str(uuid.uuid4())
    request_hash(req, event_id)  # the real handler digests every request before logging it
    decision = decide(
        ref.policy, req.context, req.actions, set(req.excluded), event_id, LEARNING_MODE
    )
    ranking = [{"id": action_id, "probability": p} for action_id, p in decision.ranking]
    answer = {"ranking": ranking, "eventId": event_id, "rewardActionId": ranking[0]["id"]}
    return JSONResponse(answer, status_code=201)


def create_app(keys: Keys, settings: Settings) -> Starlette:
    app = Starlette(routes=[Route(PATH, rank, methods=["POST"])], exception_handlers=HANDLERS)  # type: ignore[arg-type]
    app.state.service = Reference(keys, settings, Policy(with_epsilon(DEFAULT_ARGUMENTS, 0.2)))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--key", help="API key (default DS_API_KEY, else 'k')")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    settings = Settings.from_env(host=args.host, port=args.port, log_level=args.log_level)
    api = args.key or settings.api_key or "k"
    keys = Keys(api, settings.admin_key or api + "-admin")
    uvicorn.run(
        create_app(keys, settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
