"""The no-database reference: rank as the service does it, minus the log.

`python3 -m bench.reference [--port 8100] [--host 127.0.0.1] [--key K] [--workers N]`

A Starlette app with one route, `POST /personalizer/v1.0/rank`, that runs the real handler's
steps up to the decision: the key check (`authorize`), the bounded body (`read_body`), and
`app.api.rank.rank_body` (the request parsing and feature cleaning, the request digest, and
`policies.ranking.decide` with the default policy at epsilon 0.2); it answers the same 201 JSON
with the same encoder. It writes nothing: no database, no decision row, no group commit. What
a load run measures on the real server beyond this one is the cost of logging the decision
durably. Served by uvicorn with the real server's options (`app.cli.serve`), in `--workers`
processes.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.common import authorize, read_body
from app.api.rank import answer, rank_body
from app.cli import uvicorn_options
from app.errors import HANDLERS
from app.keys import Keys
from app.settings import Settings
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.vw import Policy

PATH = "/personalizer/v1.0/rank"
LEARNING_MODE = "Online"


@dataclass
class Reference:
    """What `authorize` and the handler need of the service: keys, settings, a policy."""

    keys: Keys
    settings: Settings
    policy: Policy


async def rank(request: Request) -> Response:
    authorize(request)
    ref: Reference = request.app.state.service
    raw = await read_body(request, ref.settings.max_body_bytes)
    ranked = rank_body(raw, ref.policy, LEARNING_MODE)  # the real handler's steps, no I/O
    return answer(ranked.event_id, ranked.ranking)


def create_app(keys: Keys, settings: Settings) -> Starlette:
    app = Starlette(routes=[Route(PATH, rank, methods=["POST"])], exception_handlers=HANDLERS)  # type: ignore[arg-type]
    app.state.service = Reference(keys, settings, Policy(with_epsilon(DEFAULT_ARGUMENTS, 0.2)))
    return app


def app_from_env() -> Starlette:
    """The app of one worker process (`--workers N`): the key comes from DS_API_KEY."""
    api = os.environ["DS_API_KEY"]
    return create_app(Keys(api, api + "-admin"), Settings.from_env())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--key", help="API key (default DS_API_KEY, else 'k')")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    settings = Settings.from_env(host=args.host, port=args.port, log_level=args.log_level)
    api = args.key or settings.api_key or "k"
    options = uvicorn_options(settings)
    if args.workers <= 1:
        uvicorn.run(create_app(Keys(api, api + "-admin"), settings), **options)
    else:
        os.environ["DS_API_KEY"] = api
        uvicorn.run("bench.reference:app_from_env", factory=True, workers=args.workers, **options)


if __name__ == "__main__":
    main()
