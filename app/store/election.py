"""One learner per deployment, elected through a PostgreSQL advisory lock with a lease, and the
notifications that keep every worker's model and configuration current.

Each process keeps one dedicated connection. On it the process LISTENs, and tries the learner
lock every `RETRY_S` seconds until it holds it; taking the lock also takes a new epoch, the
learner's fencing token (`app.store.lease`). The lock lives as long as that session: if the
learner dies, loses the database, or stops talking for `lease_s` seconds (the session's
`idle_session_timeout`: a paused process), the session ends, the lock is free, and another
process takes it within `RETRY_S` seconds more. The loop that holds the session does nothing
else: leading, stepping down and the notifications are handed, in order, to a second task, so
a long catch-up or reload never keeps the session silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.process import ProcessId
from app.store import lease
from app.store.db import KEEPALIVES

log = logging.getLogger(__name__)

CHANNEL = "decision_service"
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
_LEAD, _STEP_DOWN, _NOTIFY = "lead", "step down", "notify"


def conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Election:
    def __init__(
        self,
        url: str,
        me: ProcessId,
        lease_s: float,
        on_lead: Callable[[], Awaitable[None]],
        on_step_down: Callable[[], Awaitable[None]],
        on_notify: Callable[[str], Awaitable[None]],
    ) -> None:
        self._url = conninfo(url)
        self._me = me
        self._lease_s = lease_s
        self._on_lead = on_lead
        self._on_step_down = on_step_down
        self._on_notify = on_notify
        self._conn: psycopg.AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._resign = False
        self.epoch: int | None = None  # the learner's fencing token while this process leads

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    async def start(self, wait: float = 0.0) -> None:
        """Try to lead now, for up to `wait` seconds (a lone process should lead, and catch up,
        before it serves: a killed predecessor's session may hold the lock a moment), then keep
        the session and keep trying in the background."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                await self._connect()
                await self._try_lead()
            except Exception as exc:  # the loop below keeps trying
                log.warning("learner election: attempt failed: %s", exc)
                await self._close()
            if self.leading or loop.time() >= deadline:
                break
            await asyncio.sleep(0.2)
        while not self._events.empty():  # the caller reads the current state after this
            self._events.get_nowait()
            self._events.task_done()
        self._task = asyncio.create_task(self._run(), name="learner-election")
        if self.leading:  # lead before serving; the session is kept alive meanwhile
            await self._lead()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="learner-events")

    async def stop(self) -> None:
        for task in (self._task, self._dispatcher):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._close()
        self.epoch = None

    def resign(self) -> None:
        """Give up the lead (this process was deposed): the session is closed at the next
        turn of the loop, and the process competes again afterwards."""
        self._resign = True

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
            # losing the peer, not after the OS default of two hours; and after `lease_s`
            # seconds in which this process sent nothing (it is paused).
            settings = {**SERVER_KEEPALIVES, "idle_session_timeout": int(self._lease_s * 1000)}
            for setting, value in settings.items():
                await self._conn.execute(f"SET {setting} = {int(value)}")
            await self._conn.execute(f"LISTEN {CHANNEL}")
            # Notifications sent while no connection listened are lost: catch up.
            self._events.put_nowait((_NOTIFY, CONNECTED))
        return self._conn

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None

    async def _try_lead(self) -> None:
        if self.leading or self._conn is None:
            return
        epoch = await lease.take(self._conn, self._me)
        if epoch is None:
            return
        self.epoch = epoch
        log.info("this process (pid %d) is the learner, epoch %d", self._me.pid, epoch)
        self._events.put_nowait((_LEAD, ""))

    async def _lost(self, why: object) -> None:
        await self._close()
        if self.leading:
            log.warning("this process is no longer the learner (epoch %s): %s", self.epoch, why)
            self.epoch = None
            self._events.put_nowait((_STEP_DOWN, ""))

    async def _run(self) -> None:
        while True:
            try:
                if self._resign:
                    self._resign = False
                    await self._lost("deposed")
                    await asyncio.sleep(RETRY_S)
                conn = await self._connect()
                await self._try_lead()
                async for notify in conn.notifies(timeout=RETRY_S):
                    self._events.put_nowait((_NOTIFY, notify.payload))
                # notice a dead (or silent) connection even when idle; keeps the session busy
                await asyncio.wait_for(conn.execute("SELECT 1"), LIVENESS_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError, TimeoutError) as exc:
                await self._lost(exc)
                await asyncio.sleep(RETRY_S)
            except Exception as exc:
                log.exception("election loop error")
                await self._lost(exc)
                await asyncio.sleep(RETRY_S)

    async def _lead(self) -> None:
        try:
            await self._on_lead()
        except Exception:
            log.exception("could not start learning; giving up the lead")
            self.resign()

    async def _dispatch(self) -> None:
        """Leading, stepping down and notifications, one at a time, in the order they came."""
        while True:
            kind, payload = await self._events.get()
            try:
                if kind == _LEAD:
                    if self.leading:
                        await self._lead()
                elif kind == _STEP_DOWN:
                    await self._on_step_down()
                else:
                    await self._on_notify(payload)
            except Exception:
                log.exception("handling %s %s failed", kind, payload)
            finally:
                self._events.task_done()


async def notify(conn: AsyncConnection, payload: str) -> None:
    """Notify every worker at the commit of the transaction `conn` is in."""
    await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))
