"""The lean reference: the useful VW work of a rank, and nothing else.

`python3 -m bench.lean [--port 8200] [--host 127.0.0.1] [--workers N]`

A Starlette app with one route, `POST /personalizer/v1.0/rank`, served by uvicorn with the
real server's options (`app.cli.uvicorn_options`). It decodes the body with orjson (no
validation, no key check, no exclusions, no digest); builds Personalizer's VW JSON document as
the service does (the context under `FromUrl`, the actions under `_multi` with `_tag`,
`i: {constant, id}` and `j`); parses it with vowpal-wabbit-next's JSON parser and predicts with
the default policy at epsilon 0.2 (`policies.vw.Policy`, the service's own fast path into VW);
draws the action with the service's eventId-seeded sampler (a fresh uuid when the body has no
eventId); and answers the same 201 JSON. Nothing is written anywhere.

What a load run measures on the service beyond this app is everything the service adds to the
same useful work: validation, the retry digest, the log, the group commit, the framework
around them. A test checks that its pmf equals the service's for the same model and body.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.cli import uvicorn_options
from app.settings import Settings
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.sampling import sample
from policies.vw import Policy

PATH = "/personalizer/v1.0/rank"
EXPLORATION = 0.2


def vw_text(body: dict[str, Any]) -> bytes:
    """Personalizer's VW JSON document of a rank body, as the service builds it."""
    return orjson.dumps(
        {
            "FromUrl": body["contextFeatures"],
            "_multi": [
                {"_tag": a["id"], "i": {"constant": 1, "id": a["id"]}, "j": a["features"]}
                for a in body["actions"]
            ],
        }
    )


def decide(policy: Policy, body: dict[str, Any]) -> dict[str, Any]:
    """The 201 body: the pmf, a seeded draw, the chosen action first."""
    pmf = policy.pmf_of(vw_text(body).decode())
    event_id = body.get("eventId") or str(uuid.uuid4())
    chosen = sample(pmf, event_id)
    ids = [a["id"] for a in body["actions"]]
    order = [chosen, *(i for i in range(len(ids)) if i != chosen)]
    return {
        "ranking": [{"id": ids[i], "probability": pmf[i]} for i in order],
        "eventId": event_id,
        "rewardActionId": ids[chosen],
    }


def create_app() -> Starlette:
    policy = Policy(with_epsilon(DEFAULT_ARGUMENTS, EXPLORATION))

    async def rank(request: Request) -> Response:
        answer = decide(policy, orjson.loads(await request.body()))
        return Response(orjson.dumps(answer), 201, media_type="application/json")

    return Starlette(routes=[Route(PATH, rank, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.lean", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    settings = Settings.from_env(host=args.host, port=args.port, log_level=args.log_level)
    options = uvicorn_options(settings)
    if args.workers <= 1:
        uvicorn.run(create_app(), **options)
    else:
        uvicorn.run("bench.lean:create_app", factory=True, workers=args.workers, **options)


if __name__ == "__main__":
    main()
