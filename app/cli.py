"""`decision-service serve | migrate`."""

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
        options = {
            "host": settings.host,
            "port": settings.port,
            "log_level": settings.log_level,
            "access_log": False,
            "timeout_graceful_shutdown": 10,
        }
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


if __name__ == "__main__":
    sys.exit(main())
