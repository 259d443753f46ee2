"""Database URLs, engines, migrations and the embedded PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)


def sync_url(url: str) -> str:
    """`postgresql://…` or `postgres://…` → the psycopg 3 driver URL SQLAlchemy needs."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://')[0]}://…")


def async_engine(url: str, pool_size: int = 8) -> AsyncEngine:
    return create_async_engine(
        sync_url(url),
        pool_size=pool_size,
        max_overflow=4,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def migrate(url: str) -> None:
    """Apply every pending Alembic migration."""
    from alembic import command
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command.upgrade(config, "head")


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the embedded PostgreSQL under `data_dir/postgres`; returns (url, handle).

    Keep the handle alive: the server stops when the last handle is released.
    """
    import pgserver

    pgdata = data_dir / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL running in %s", pgdata)
    return url, server
