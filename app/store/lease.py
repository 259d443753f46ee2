"""The learner's lease and its fencing token (the epoch).

A process becomes the learner by taking the session-level advisory lock `locks.LEARNER` on its
election connection; in the same transaction it increments `learner_lease.epoch` and records who
it is. That epoch is its fencing token: every write the learner makes (finalizing events,
snapshots with their scores, retention, evaluation status, auto-optimization) starts with
`fence`, which reads the current epoch under a share lock on the lease row. A transaction whose
epoch is no longer current raises `Deposed` and commits nothing; one whose epoch is current
holds the row until it ends, so a new learner's epoch commits after it, and the new learner
reads everything it wrote. Between two learners no write interleaves: along `joined.seq` and
`snapshots.id` the recorded epoch never decreases.

The lease: the election session has `idle_session_timeout`, so the database ends it (and frees
the lock) when the learner stops talking for that long: a process that is paused (SIGSTOP, a
long pause, swap) keeps its TCP connection alive but not its lead. A fenced transaction left
idle for as long ends too (`idle_in_transaction_session_timeout`), so it cannot hold back the
next learner's epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.process import ProcessId
from app.store import locks
from app.store.tables import learner_lease


class Deposed(Exception):
    """This process's learner epoch is no longer the current one: another process leads."""


@dataclass(frozen=True)
class Term:
    """A learner's term: its epoch, and the lease that bounds how long it may stay silent."""

    epoch: int
    lease_s: float


TAKE = f"""
WITH locked AS (SELECT pg_try_advisory_lock({locks.LEARNER}) AS got)
UPDATE learner_lease SET epoch = epoch + 1, host = %s, pid = %s, process_start = %s,
    elected_at = now()
FROM locked WHERE learner_lease.id = 1 AND locked.got
RETURNING epoch
"""


async def take(conn: psycopg.AsyncConnection, me: ProcessId) -> int | None:
    """On the election connection (autocommit): the learner lock and a new epoch in one
    transaction, or None when another session holds the lock. On an error the caller closes the
    connection (a session lock taken in a failed transaction outlives it)."""
    cursor = await conn.execute(TAKE, (me.host, me.pid, me.start))
    row = await cursor.fetchone()
    return int(row[0]) if row else None


# the current epoch, with the lease row held (shared) until the transaction ends
HOLD_EPOCH = (
    sa.select(learner_lease.c.epoch).where(learner_lease.c.id == 1).with_for_update(read=True)
)


async def fence(conn: AsyncConnection, term: Term | None) -> None:
    """Continue this transaction only as the learner of `term`; holds the lease row (shared)
    until the transaction ends. Raises Deposed otherwise."""
    if term is None:
        raise Deposed("this process is not the learner")
    timeout = sa.func.set_config(
        "idle_in_transaction_session_timeout", str(max(1, int(term.lease_s * 1000))), True
    )
    current = (await conn.execute(HOLD_EPOCH.add_columns(timeout))).first()
    if current is None or current[0] != term.epoch:
        raise Deposed(f"learner epoch {term.epoch} is over (now {current[0] if current else None})")


def fence_sync(conn: sa.Connection, epoch: int) -> None:
    """`fence` for a synchronous connection (the evaluation job process)."""
    current = conn.execute(HOLD_EPOCH).scalar_one_or_none()
    if current != epoch:
        raise Deposed(f"learner epoch {epoch} is over (now {current})")
