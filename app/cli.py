"""`decision-service serve | migrate | evaluate`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from app.keys import load_or_create
from app.settings import Settings
from app.store.db import migrate, start_embedded

log = logging.getLogger("decision_service")


def _database(settings: Settings) -> tuple[str, Any]:
    if settings.database_url:
        return settings.database_url, None
    url, handle = start_embedded(settings.data_dir)
    return url, handle


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `serve` runs uvicorn (the benchmark's no-database reference runs the same way)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


def serve(settings: Settings) -> None:
    import uvicorn

    url, embedded = _database(settings)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally instead, so the
    # embedded PostgreSQL is stopped below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        migrate(url)
        keys, created = load_or_create(settings.data_dir, settings.api_key, settings.admin_key)
        if created:
            print(
                f"Generated keys (kept in {settings.data_dir / 'keys.json'}):\n"
                f"  API key:   {keys.api}\n  admin key: {keys.admin}",
                flush=True,
            )
        options = uvicorn_options(settings)
        if settings.workers <= 1:
            from app.main import create_app

            uvicorn.run(create_app(settings, url, keys), **options)
        else:
            # Worker processes build their app from the environment (app.main.app_from_env).
            os.environ.update(DATABASE_URL=url, DS_API_KEY=keys.api, DS_ADMIN_KEY=keys.admin)
            os.environ["DS_DATA_DIR"] = str(settings.data_dir)
            os.environ["DS_WORKERS"] = str(settings.workers)
            uvicorn.run("app.main:app_from_env", factory=True, workers=settings.workers, **options)
    finally:
        if embedded is not None:
            embedded.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="decision-service")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the HTTP service")
    run.add_argument("--host", help="bind address (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="TCP port (default 8000)")
    run.add_argument("--data-dir", help="embedded PostgreSQL and keys (default ./var)")
    run.add_argument("--workers", type=int, help="API processes (default 1)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    mig = commands.add_parser("migrate", help="apply pending database migrations and exit")
    mig.add_argument("--data-dir", help="embedded PostgreSQL (default ./var)")
    ev = commands.add_parser(
        "evaluate", help="offline evaluation of logged events; writes report.json and report.html"
    )
    ev.add_argument("--start", required=True, help="window start (ISO 8601; UTC if no offset)")
    ev.add_argument("--end", required=True, help="window end, exclusive (ISO 8601)")
    ev.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar='NAME="ARGS"',
        help="a custom policy to compare (repeatable, up to 10)",
    )
    ev.add_argument("--optimize", action="store_true", help="also search for better arguments")
    ev.add_argument("--out", required=True, help="directory for report.json and report.html")
    ev.add_argument("--name", default="command-line evaluation", help="the report's title")
    ev.add_argument("--data-dir", help="embedded PostgreSQL (default ./var)")
    args = parser.parse_args(argv)
    settings = Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        log_level=getattr(args, "log_level", None),
        workers=getattr(args, "workers", None),
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "serve":
        serve(settings)
    elif args.command == "migrate":
        url, _ = _database(settings)
        migrate(url)
        print("migrations applied")
    elif args.command == "evaluate":
        _evaluate(settings, args)


def _evaluate(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from app import evaluate

    url, embedded = _database(settings)
    try:
        data = evaluate.run(
            url,
            start=evaluate.parse_time(args.start, "--start"),
            end=evaluate.parse_time(args.end, "--end"),
            policies=evaluate.parse_policies(args.policy),
            optimization=args.optimize,
            out=Path(args.out),
            name=args.name,
        )
    except evaluate.UsageError as exc:
        sys.exit(f"decision-service evaluate: {exc}")
    finally:
        if embedded is not None:
            embedded.cleanup()
    print(evaluate.summary(data))
    print(f"wrote {Path(args.out) / 'report.json'} and {Path(args.out) / 'report.html'}")


if __name__ == "__main__":
    sys.exit(main())
