"""Group commit: the one component that commits decisions, rewards and activations, and the
one that answers for them.

Promises:
- A call is answered 201/204 only after its row is committed: requests hand their rows to
  `GroupCommitWriter` and wait; one task takes everything queued, sends it as one transaction
  in one round trip (psycopg pipeline, prepared statements) on the writer's own connection,
  and answers every waiter when the COMMIT comes back. While a commit is in flight the next
  requests queue up and go in the next transaction.
- A call answered 503 never counts. A call waits at most `timeout` seconds: if its row was not
  sent by then, it never is; if its batch was sent and the COMMIT has not come back, every call
  of the batch is answered 503 and the batch, should it commit after all, is voided
  (`voided_batches`) before the writer publishes anything else. A batch whose connection failed
  mid-flight is in doubt: its calls get 503 and, from a new connection, once the old session is
  gone, the writer looks whether it committed (`writers.last_batch`) and voids it if so.
- Nothing counts before it is resolved: each batch records its number in the rows it writes, and
  the writer publishes the batches it has answered for (`writers.resolved_through`) with the next
  batch, or on its own a moment later when no batch follows. The learner finalizes only rows of
  resolved batches (`app.store.writers`).

Over 400 lines because the queue, the batches in flight and the answers are one state machine
(what a timeout, a late COMMIT or a lost connection does depends on all three); its statements
are in `app.store.batch_statements`, its bookkeeping in the database in `app.store.writers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.numeric import Int8

from app.process import ProcessId
from app.store import writers as w
from app.store.batch_statements import (
    INSERT_DECISION,
    INSERT_DECISIONS,
    INSERT_EVENTS,
    MARKED,
    REPLAY_DECISION,
    DecisionRow,
    Logged,
    column_params,
    row_params,
)
from app.store.election import conninfo
from policies import codec

log = logging.getLogger(__name__)

MAX_BATCH = 500
PUBLISH_AFTER_S = 0.1  # idle this long after a batch: publish its resolution on its own
HEARTBEAT_S = 1.0  # idle this long: a round trip that proves the connection (and readiness)
READY_WITHIN_S = 5.0  # ready while the last round trip came back less than this ago
RETRY_PREVIOUS_S = 1.0  # how often to try resolving a previous connection's batches

DECISION, REWARD, ACTIVATION, REPLAY = "decision", "reward", "activation", "replay"


class WriteTimeout(ConnectionError):
    """The commit did not come back in time (the database is slow or silent): answer 503."""


class Unavailable(ConnectionError):
    """The database cannot be reached: nothing was sent; answer 503."""


class _Op:
    __slots__ = ("batch", "future", "kind", "row", "timer")

    def __init__(self, kind: str, row: Any, future: asyncio.Future[Any]) -> None:
        self.kind = kind
        self.row = row
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.batch: _Batch | None = None


class _Batch:
    __slots__ = ("late", "number", "ops")

    def __init__(self, number: int, ops: list[_Op]) -> None:
        self.number = number
        self.ops = ops
        self.late = False  # its calls were answered 503 while it was in flight


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a caller that gave up: its outcome is not "never retrieved"


class GroupCommitWriter:
    def __init__(
        self,
        url: str,
        on_commit: Callable[[set[str]], None],
        timeout: float,
        process: ProcessId,
    ) -> None:
        self._url = conninfo(url)
        self._on_commit = on_commit
        self._timeout = timeout
        self._process = process
        self._ops: deque[_Op] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._account: w.Account | None = None
        self._n = 0
        self._previous: list[w.Account] = []  # of connections that failed, still owing
        self._retry_previous_at = 0.0
        self._last_ok = -1e9  # loop time of the last round trip that came back
        self._next_connect_warning = 0.0

    # -- the callers' side ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (so the process is ready when it starts serving), then run."""
        await self._connection([])
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def stop(self) -> None:
        """Commit what is queued, publish what is resolved, close the connection (waiting at
        most the calls' timeout for a silent database)."""
        self._stopping = True
        self._wake()
        if self._task:
            done, _ = await asyncio.wait({self._task}, timeout=self._timeout + 1.0)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    @property
    def ready(self) -> bool:
        """Connected, and a round trip came back within READY_WITHIN_S."""
        loop = asyncio.get_running_loop()
        return self._conn is not None and loop.time() - self._last_ok < READY_WITHIN_S

    def answered(self) -> w.Local | None:
        """(writer id, batch): this connection's calls through that batch were answered in
        time (published or not), so its rows count, for a learner in this process."""
        account = self._account
        if account is None:
            return None
        through = min(account.voids) - 1 if account.voids else account.resolved
        return account.writer_id, through

    def state(self) -> dict[str, object]:
        """What an operator may see: the connection, its writer id, the last round trip."""
        loop = asyncio.get_running_loop()
        account = self._account
        return {
            "connected": self._conn is not None,
            "writerId": account.writer_id if account else None,
            "lastRoundTripSecondsAgo": round(loop.time() - self._last_ok, 3),
            "queued": len(self._ops),
            "previousConnectionsUnsettled": len(self._previous),
        }

    async def add_decision(self, row: DecisionRow) -> bool:
        """Log a decision. True: written; False: a decision with this eventId already exists."""
        return await self._submit(DECISION, row)

    async def replay(self, event_id: str, digests: list[str]) -> Logged | None:
        """The decision logged under `event_id` (None: none is), for a retry whose request
        digest is one of `digests`; see REPLAY_DECISION."""
        return await self._submit(REPLAY, (event_id, digests))

    async def add_reward(self, event_id: str, value: float, slot_id: str | None = None) -> bool:
        """Log a reward. True: written; False: no decision has this eventId."""
        return await self._submit(REWARD, (event_id, value, slot_id))

    async def add_activation(self, event_id: str) -> bool:
        """Log an activation. True: written; False: no decision has this eventId."""
        return await self._submit(ACTIVATION, (event_id, None, None))

    async def _submit(self, kind: str, row: Any) -> Any:
        if self._task is None or self._task.done() or self._stopping:
            raise Unavailable("the writer is not running")
        loop = asyncio.get_running_loop()
        op = _Op(kind, row, loop.create_future())
        op.future.add_done_callback(_retrieve)
        op.timer = loop.call_later(self._timeout, self._expire, op)
        self._ops.append(op)
        self._wake()
        return await op.future

    def _expire(self, op: _Op) -> None:
        """The call's time is up: 503. A sent batch answers 503 for all its calls at once."""
        op.timer = None
        if op.future.done():
            return
        ops = [op] if op.batch is None else op.batch.ops
        if op.batch is not None:
            op.batch.late = True
        message = f"the database did not commit within {self._timeout:g} s"
        for each in ops:
            if each.timer is not None:
                each.timer.cancel()
                each.timer = None
            if not each.future.done():
                each.future.set_exception(WriteTimeout(message))

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def _wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a call (or stop); True if one is queued."""
        if self._ops or self._stopping:
            return bool(self._ops)
        loop = asyncio.get_running_loop()
        self._arrived = loop.create_future()
        timer = loop.call_later(seconds, self._wake)
        try:
            await self._arrived
        finally:
            timer.cancel()
            self._arrived = None
        return bool(self._ops)

    # -- the writer task ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self._ops:
                    await self._write_next()
                elif self._stopping:
                    await self._finish()
                    return
                else:
                    await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("group-commit writer error")
                await asyncio.sleep(0.1)

    def _take(self) -> list[_Op]:
        ops: list[_Op] = []
        while self._ops and len(ops) < MAX_BATCH:
            op = self._ops.popleft()
            if not op.future.done():  # else: answered 503 while queued, never sent
                ops.append(op)
        return ops

    async def _write_next(self) -> None:
        if self._previous and asyncio.get_running_loop().time() >= self._retry_previous_at:
            await self._resolve_previous()  # also under a load that never leaves it idle
        ops = self._take()
        if not ops:
            return
        conn = await self._connection(ops)
        if conn is None:
            return
        await self._write(conn, ops)

    async def _idle(self) -> None:
        account = self._account
        owing = account is not None and account.owes
        if await self._wait(PUBLISH_AFTER_S if owing else HEARTBEAT_S):
            return
        loop = asyncio.get_running_loop()
        if self._previous and loop.time() >= self._retry_previous_at:
            await self._resolve_previous()
        if self._stopping:
            return
        conn = await self._connection([])
        if conn is not None:
            await self._publish(conn, closing=False)

    async def _finish(self) -> None:
        if self._previous:
            await self._resolve_previous()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._publish(self._conn, closing=True)
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None

    # -- the connection -------------------------------------------------------------------------

    async def _connection(self, ops: list[_Op]) -> psycopg.AsyncConnection[Any] | None:
        """The writer's connection, (re)opened and registered if need be; None (and `ops`
        answered 503, unsent) when the database cannot be reached."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn, writer_id = await w.connect(self._url, self._process)
        except (psycopg.Error, OSError) as exc:
            now = asyncio.get_running_loop().time()
            if now >= self._next_connect_warning:  # once a minute while it lasts
                self._next_connect_warning = now + 60.0
                log.warning("group-commit writer: cannot connect: %s", exc)
            for op in ops:
                self._resolve(op, Unavailable(f"the database cannot be reached: {exc}"))
            return None
        self._conn = conn
        self._next_connect_warning = 0.0
        self._account = w.Account(writer_id)
        self._n = 0
        self._last_ok = asyncio.get_running_loop().time()
        return conn

    def _lost(self, doubt: int = 0) -> None:
        """The connection failed: drop it. Its writer id is settled from a new connection once
        its session is gone (`_resolve_previous`): the batch in `doubt` voided if it committed,
        the voids it still owes recorded, and the id closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()  # no goodbye: the socket may be silent
        account, self._account = self._account, None
        if account is not None:
            account.doubt = doubt
            self._previous.append(account)

    # -- one batch --------------------------------------------------------------------------

    async def _write(self, conn: psycopg.AsyncConnection[Any], ops: list[_Op]) -> None:
        account = self._account
        assert account is not None
        self._n += 1
        batch = _Batch(w.batch_number(account.writer_id, self._n), ops)
        for op in ops:
            op.batch = batch
        decisions: dict[str, _Op] = {}
        events: list[_Op] = []
        replays: list[_Op] = []
        for op in ops:
            if op.kind == DECISION:
                decisions.setdefault(op.row.event_id, op)  # the first of one eventId is written
            elif op.kind == REPLAY:
                replays.append(op)
            else:
                events.append(op)
        resolved, voids = account.resolved, list(account.voids)
        statements: list[tuple[str, dict[str, Any]]] = []
        if len(decisions) == 1:
            (op,) = decisions.values()
            statements.append((INSERT_DECISION, row_params(op.row)))
        elif decisions:
            statements.append(
                (INSERT_DECISIONS, column_params([op.row for op in decisions.values()]))
            )
        if events:
            rows = [
                {"n": n, "kind": op.kind, "event_id": op.row[0], "value": op.row[1],
                 "slot_id": op.row[2]}
                for n, op in enumerate(events)
            ]  # fmt: skip
            statements.append((INSERT_EVENTS, {"ops": codec.dumps_text(rows)}))
        for op in replays:
            event_id, digests = op.row
            statements.append((REPLAY_DECISION, {"event_id": event_id, "digests": digests}))
        for _, params in statements:
            params["batch"] = batch.number
        first_query, first = statements[0]
        # as int8 from the first batch on (0 would be sent as int2): psycopg prepares a statement
        # once per parameter-type signature, a round trip of its own
        first.update(resolved=Int8(resolved), writer=account.writer_id, voids=voids)
        statements[0] = (MARKED[first_query], first)
        try:
            cursors = [conn.cursor() for _ in statements]
            if len(statements) == 1:  # one statement: its own implicit transaction
                await cursors[0].execute(*statements[0], prepare=True)
            else:
                # One implicit transaction: the statements up to the pipeline's sync commit
                # together when it is reached (an error rolls them all back), and leaving the
                # block waits for the sync's answer, so the rows are committed when it returns.
                async with conn.pipeline():
                    for cursor, (query, params) in zip(cursors, statements, strict=True):
                        await cursor.execute(query, params, prepare=True)
            results = [await cursor.fetchall() for cursor in cursors]
            inserted = {row[0] for row in results[0]} if decisions else set()
            known: set[str] = set()
            if events:
                known = {row[0] for row in results[1 if decisions else 0]}
            logged = [rows[0] if rows else None for rows in results[len(results) - len(replays) :]]
        except psycopg.Error as exc:
            await self._failed(conn, batch, exc)
            return
        self._last_ok = asyncio.get_running_loop().time()
        account.published = resolved
        del account.voids[: len(voids)]
        account.resolved = batch.number
        if batch.late:  # committed after its calls were answered 503
            account.voids.append(batch.number)
            kinds = sorted({op.kind for op in ops})
            log.warning(
                "batch %d (%d calls: %s) committed after its calls were answered 503: voided",
                batch.number, len(ops), ", ".join(kinds),
            )  # fmt: skip
            return
        for op in ops:
            if op.kind == DECISION:
                result: Any = decisions[op.row.event_id] is op and op.row.event_id in inserted
            elif op.kind == REPLAY:
                row = logged[replays.index(op)]
                result = None if row is None else Logged(row[0], codec.loads(row[1]))
            else:
                result = op.row[0] in known
            self._resolve(op, result)
        if events:
            self._on_commit({op.kind for op in events})

    async def _failed(
        self, conn: psycopg.AsyncConnection[Any], batch: _Batch, exc: psycopg.Error
    ) -> None:
        """A batch that did not commit (a bad row: retried op by op), or whose connection
        failed (in doubt: 503, and voided later if it committed after all)."""
        if w.is_connection_error(exc) or conn.closed:
            log.warning("group commit failed, database unavailable: %s", exc)
            for op in batch.ops:
                self._resolve(op, Unavailable(f"the database connection failed: {exc}"))
            self._lost(doubt=batch.number)
            return
        with contextlib.suppress(psycopg.Error):
            await conn.rollback()
        if len(batch.ops) == 1:
            log.error("group commit refused a row: %s", exc)
            self._resolve(batch.ops[0], exc)
            return
        for op in batch.ops:  # one bad row must not fail its neighbours
            op.batch = None
            if not op.future.done():
                await self._write(conn, [op])
                if self._conn is None:
                    return

    def _resolve(self, op: _Op, result: Any) -> None:
        """Answer a call with its result (or, given an exception, with that error)."""
        if op.timer is not None:
            op.timer.cancel()
            op.timer = None
        if op.future.done():
            return
        if isinstance(result, BaseException):
            op.future.set_exception(result)
        else:
            op.future.set_result(result)

    # -- publishing what is resolved --------------------------------------------------------------

    async def _publish(self, conn: psycopg.AsyncConnection[Any], closing: bool) -> None:
        """One transaction that records the voids and `resolved_through` (and proves the
        connection): durable when it records voids, else with asynchronous commit (a confirmation
        lost in a crash is recovered as answered, which it was)."""
        account = self._account
        assert account is not None
        resolved, voids = account.resolved, list(account.voids)
        try:
            await w.publish(conn, account.writer_id, resolved, voids, closing)
        except psycopg.Error as exc:
            if w.is_connection_error(exc) or conn.closed:
                log.warning("group-commit writer: connection lost: %s", exc)
                self._lost()
            else:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                log.error("group-commit writer: cannot publish: %s", exc)
            return
        self._last_ok = asyncio.get_running_loop().time()
        account.published = resolved
        del account.voids[: len(voids)]

    async def _resolve_previous(self) -> None:
        """Settle what previous connections owe, each once its session is gone."""
        loop = asyncio.get_running_loop()
        self._retry_previous_at = loop.time() + RETRY_PREVIOUS_S
        conn = await self._connection([])
        if conn is None:
            return
        for account in list(self._previous):
            try:
                voids = await w.settle(conn, account.writer_id, account.doubt, account.voids)
                if voids is None:
                    continue  # its session still holds the lock: later
            except psycopg.Error as exc:
                if w.is_connection_error(exc) or conn.closed:
                    self._lost()
                    return
                log.error(
                    "group-commit writer: cannot resolve writer %s: %s", account.writer_id, exc
                )
                continue
            self._previous.remove(account)
            if voids:
                log.warning("voided batches %s of a failed connection", voids)
