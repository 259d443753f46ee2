"""One learner per deployment, elected through a PostgreSQL advisory lock, and the
notifications that keep every worker's model and configuration current.

Each process keeps one dedicated connection. On it the process LISTENs, and tries the
session-level learner lock every `RETRY_S` seconds until it holds it. The lock lives as long as
that connection: if the learner dies or loses the database, the lock is released and another
process takes it within `RETRY_S` seconds. A process that loses its connection while leading
steps down before it tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.db import KEEPALIVES

log = logging.getLogger(__name__)

CHANNEL = "decision_service"
LEARNER_LOCK = 720_101  # pg advisory lock key of the learner
RETRY_S = 1.0
LIVENESS_TIMEOUT_S = 5.0
APPLICATION_NAME = "decision-service-election"  # how its session shows in pg_stat_activity
CONNECTED = "connected"  # passed to on_notify after every (re)connection
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": 5,
    "tcp_keepalives_interval": 2,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}


def conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Election:
    def __init__(
        self,
        url: str,
        on_lead: Callable[[], Awaitable[None]],
        on_step_down: Callable[[], Awaitable[None]],
        on_notify: Callable[[str], Awaitable[None]],
    ) -> None:
        self._url = conninfo(url)
        self._on_lead = on_lead
        self._on_step_down = on_step_down
        self._on_notify = on_notify
        self._conn: psycopg.AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.leading = False

    async def start(self, wait: float = 0.0) -> None:
        """Try to lead now, for up to `wait` seconds (a lone process should lead before it
        serves: a killed predecessor's session may hold the lock a moment), then keep trying
        in the background."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            try:
                await self._connect()
                await self._try_lead()
            except Exception as exc:  # the loop below keeps trying
                log.warning("learner election: attempt failed: %s", exc)
            if self.leading or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.2)
        self._task = asyncio.create_task(self._run(), name="learner-election")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def _connect(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,
                connect_timeout=5,
                application_name=APPLICATION_NAME,
                **KEEPALIVES,
            )
            # The server side drops this session (and the learner lock) within ~15 s of
            # losing the peer, not after the OS default of two hours.
            for setting, value in SERVER_KEEPALIVES.items():
                await self._conn.execute(f"SET {setting} = {int(value)}")
            await self._conn.execute(f"LISTEN {CHANNEL}")
            # Notifications sent while no connection listened are lost: catch up.
            await self._on_notify(CONNECTED)
        return self._conn

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None

    async def _try_lead(self) -> None:
        if self.leading or self._conn is None:
            return
        cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEARNER_LOCK,))
        row = await cursor.fetchone()
        if not (row and row[0]):
            return
        self.leading = True
        log.info("this process is the learner")
        try:
            await self._on_lead()
        except BaseException:
            self.leading = False
            with contextlib.suppress(Exception):
                await self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEARNER_LOCK,))
            raise

    async def _run(self) -> None:
        while True:
            try:
                conn = await self._connect()
                await self._try_lead()
                async for notify in conn.notifies(timeout=RETRY_S):
                    await self._on_notify(notify.payload)
                # notice a dead (or silent) connection even when idle
                await asyncio.wait_for(conn.execute("SELECT 1"), LIVENESS_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError, TimeoutError) as exc:
                await self._close()
                if self.leading:
                    self.leading = False
                    log.warning("lost the learner lock with the database connection: %s", exc)
                    await self._on_step_down()
                await asyncio.sleep(RETRY_S)
            except Exception:
                log.exception("election loop error")
                await asyncio.sleep(RETRY_S)


async def notify(conn: AsyncConnection, payload: str) -> None:
    """Notify every worker at the commit of the transaction `conn` is in."""
    await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))
