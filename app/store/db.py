"""Database URLs, engines, migrations and the embedded PostgreSQL.

The rest of the service names the database only through this package: `AsyncEngine` (the
server), `Engine` and `Connection` (the evaluation job and the `evaluate` command), and
`DATABASE_ERRORS` / `is_disconnect` to tell a database failure from a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "DATABASE_ERRORS",
    "AsyncEngine",
    "Connection",
    "Engine",
    "OperationalError",
    "async_engine",
    "is_disconnect",
    "migrate",
    "ping",
    "repeatable_read",
    "start_embedded",
    "sync_engine",
    "sync_url",
]

# every error that comes from the database or its driver (answered 503 by the API)
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError, psycopg.Error)
OperationalError = sa_exc.OperationalError  # the database could not be reached or used

log = logging.getLogger(__name__)


def sync_url(url: str) -> str:
    """`postgresql://…` or `postgres://…` → the psycopg 3 driver URL SQLAlchemy needs."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://')[0]}://…")


# libpq keepalives (ignored on unix sockets): a silent peer is noticed in ~15 s, not hours.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}


def async_engine(url: str, pool_size: int = 8) -> AsyncEngine:
    return create_async_engine(
        sync_url(url),
        pool_size=pool_size,
        max_overflow=4,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5, **KEEPALIVES},
    )


def sync_engine(url: str) -> Engine:
    """A synchronous engine (the evaluation job and the `evaluate` command)."""
    return sa.create_engine(sync_url(url))


@contextlib.contextmanager
def repeatable_read(engine: Engine, read_only: bool = False) -> Iterator[Connection]:
    """A connection in one REPEATABLE READ transaction: every read sees the same snapshot."""
    level = "REPEATABLE READ READ ONLY" if read_only else "REPEATABLE READ"
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text(f"SET TRANSACTION ISOLATION LEVEL {level}"))
        yield conn


async def ping(engine: AsyncEngine, timeout: float) -> bool:
    """True when the database answers within `timeout` seconds."""

    async def select_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # Not wait_for: cancelling a call stuck on a silent socket can itself block until the
    # socket times out. A probe that is late is left to finish (or fail) in the background.
    probe = asyncio.ensure_future(select_one())
    probe.add_done_callback(lambda f: f.cancelled() or f.exception())
    done, _ = await asyncio.wait({probe}, timeout=timeout)
    return bool(done) and probe.exception() is None


def is_disconnect(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached (retry later), not bad SQL."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.InterfaceError | ConnectionError | OSError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc.orig, psycopg.OperationalError | psycopg.InterfaceError
        )
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


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
