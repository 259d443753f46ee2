"""Group commit: the one component that commits decisions, rewards and activations.

Requests hand their rows to `GroupCommitWriter` and wait. One writer task takes everything
queued, writes it in one transaction, commits, then answers every waiter; while a commit is
in flight the next requests queue up and go in the next transaction. A waiter is answered
only after its row is committed, so an acknowledged call is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.db import is_disconnect
from app.store.tables import decisions
from policies import codec

log = logging.getLogger(__name__)

MAX_BATCH = 500


class WriteTimeout(ConnectionError):
    """The commit did not happen in time (the database is slow or silent): answer 503."""


@dataclass
class _Op:
    kind: str  # "decision" | "reward" | "activation"
    row: dict[str, Any]
    future: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitWriter:
    def __init__(
        self, engine: AsyncEngine, on_commit: Callable[[set[str]], None], timeout: float
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Op] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        await self._queue.join()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def add_decision(self, row: dict[str, Any]) -> bool:
        """Log a decision. True: written; False: a decision with this eventId already exists."""
        return await self._submit(_Op("decision", row))

    async def add_reward(self, event_id: str, value: float, slot_id: str | None = None) -> bool:
        """Log a reward. True: written; False: no decision has this eventId."""
        row = {"event_id": event_id, "value": value, "slot_id": slot_id}
        return await self._submit(_Op("reward", row))

    async def add_activation(self, event_id: str) -> bool:
        """Log an activation. True: written; False: no decision has this eventId."""
        return await self._submit(_Op("activation", {"event_id": event_id}))

    async def _submit(self, op: _Op) -> bool:
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        # the caller may give up (timeout): the outcome is then retrieved here, not lost
        op.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        await self._queue.put(op)
        try:
            # shield: the op stays queued and is written even when its caller gives up
            return await asyncio.wait_for(asyncio.shield(op.future), self._timeout)
        except TimeoutError:
            raise WriteTimeout(f"the database did not commit within {self._timeout:g} s") from None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit_batch(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit_batch(self, batch: list[_Op]) -> None:
        try:
            results = await self._write(batch)
        except (DBAPIError, psycopg.Error) as exc:
            if len(batch) == 1 or is_disconnect(exc):
                for op in batch:
                    _resolve(op, exc)
                return
            # One bad row must not fail its neighbours: write each op on its own.
            for op in batch:
                try:
                    _resolve(op, (await self._write([op]))[0])
                except Exception as single:
                    _resolve(op, single)
            return
        except Exception as exc:
            if is_disconnect(exc):
                log.warning("group commit failed, database unavailable: %s", exc)
            else:
                log.exception("group commit failed")
            for op in batch:
                _resolve(op, exc)
            return
        for op, result in zip(batch, results, strict=True):
            _resolve(op, result)
        kinds = {op.kind for op, ok in zip(batch, results, strict=True) if ok}
        if kinds:
            self._on_commit(kinds)

    async def _write(self, batch: list[_Op]) -> list[bool]:
        async with self._engine.begin() as conn:
            results = await _write_decisions(conn, [op for op in batch if op.kind == "decision"])
            results |= await _write_events(conn, [op for op in batch if op.kind != "decision"])
        return [results[id(op)] for op in batch]


# Decisions: one prepared INSERT per row, all rows of a batch sent in one pipeline (one round
# trip), so PostgreSQL parses each JSON column once and nothing is compiled per request.
# Rewards and activations: one statement per batch, its rows as one JSON array.
_DECISION_COLUMNS = [c for c in decisions.columns if c.name != "created_at"]
_JSON_COLUMNS = {c.name for c in _DECISION_COLUMNS if isinstance(c.type, JSONB)}
_NAMES = ", ".join(c.name for c in _DECISION_COLUMNS)
_PLACEHOLDERS = ", ".join(
    "%s::jsonb" if c.name in _JSON_COLUMNS else "%s" for c in _DECISION_COLUMNS
)
INSERT_DECISION = f"""
WITH inserted AS (
    INSERT INTO decisions (created_at, {_NAMES}) VALUES (now(), {_PLACEHOLDERS})
    ON CONFLICT DO NOTHING
    RETURNING event_id, deferred
), queued AS (
    INSERT INTO pending (event_id, created_at, deferred)
    SELECT event_id, now(), deferred FROM inserted
)
SELECT event_id FROM inserted
"""

# Rewards and activations of logged decisions, in the order they were received.
INSERT_EVENTS = """
WITH ops AS (
    SELECT * FROM json_to_recordset(%(ops)s::json)
        AS o(n int, kind text, event_id text, value float8, slot_id text)
), known AS (
    SELECT event_id FROM decisions WHERE event_id IN (SELECT event_id FROM ops)
), saved_rewards AS (
    INSERT INTO rewards (event_id, slot_id, value, received_at)
    SELECT event_id, slot_id, value, now() FROM ops
    WHERE kind = 'reward' AND event_id IN (SELECT event_id FROM known) ORDER BY n
), saved_activations AS (
    INSERT INTO activations (event_id, received_at)
    SELECT event_id, now() FROM ops
    WHERE kind = 'activation' AND event_id IN (SELECT event_id FROM known) ORDER BY n
)
SELECT event_id FROM known
"""


async def _write_decisions(conn: AsyncConnection, ops: list[_Op]) -> dict[int, bool]:
    if not ops:
        return {}
    first: dict[str, _Op] = {}
    for op in ops:  # two requests with one eventId in a batch: the first one is written
        first.setdefault(op.row["event_id"], op)
    params = [
        [
            codec.dumps_text(op.row[c.name]) if c.name in _JSON_COLUMNS else op.row[c.name]
            for c in _DECISION_COLUMNS
        ]
        for op in first.values()
    ]
    driver = (await conn.get_raw_connection()).driver_connection
    inserted: set[str] = set()
    async with driver.cursor() as cursor:
        await cursor.executemany(INSERT_DECISION, params, returning=True)
        while True:  # one result per row: its eventId, or nothing when it was a duplicate
            inserted.update(row[0] for row in await cursor.fetchall())
            if not cursor.nextset():
                break
    return {
        id(op): first[op.row["event_id"]] is op and op.row["event_id"] in inserted for op in ops
    }


async def _write_events(conn: AsyncConnection, ops: list[_Op]) -> dict[int, bool]:
    if not ops:
        return {}
    rows = codec.dumps_text([{"n": n, "kind": op.kind, **op.row} for n, op in enumerate(ops)])
    known = set((await conn.exec_driver_sql(INSERT_EVENTS, {"ops": rows})).scalars())
    return {id(op): op.row["event_id"] in known for op in ops}


def _resolve(op: _Op, result: bool | BaseException) -> None:
    if op.future.done():
        return
    if isinstance(result, BaseException):
        op.future.set_exception(result)
    else:
        op.future.set_result(result)
