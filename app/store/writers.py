"""Writers and their batches: which logged rows count, and who resolves a dead writer's rows.

Every connection a group-commit writer opens is a row of `writers`, and every batch it sends is
numbered `(writer id << 32) | n`. A batch is *resolved* once its number is at most its writer's
`resolved_through`: the writer publishes that after its callers were answered (201/204 when the
commit came back in time; 503 when it came back late, and then the batch is also in
`voided_batches`). A row *counts* when its batch is resolved and not voided; the learner
finalizes nothing whose rows are not resolved yet.

A writer holds the advisory lock `(locks.WRITER, id)` for as long as its connection lives. When
the connection is gone, its process resolves what it left in doubt from a new connection. When
the process itself is gone (`take_over`), the rows it left unresolved are resolved as answered:
as soon as the process is seen dead when it ran on this machine, else `ORPHAN_AFTER` after its
writer was last seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.process import ProcessId, alive
from app.store import lease, locks
from app.store.db import KEEPALIVES
from app.store.election import SERVER_KEEPALIVES
from app.store.tables import voided_batches, writers

log = logging.getLogger(__name__)

LAST_OF = 0xFFFFFFFF  # the last batch number a writer can have: (id << 32) | LAST_OF
ORPHAN_AFTER = timedelta(seconds=60)


def batch_number(writer_id: int, n: int) -> int:
    return (writer_id << 32) | n


def last_batch_of(writer_id: int) -> int:
    return batch_number(writer_id, LAST_OF)


Local = tuple[int, int]  # (writer id, batch): this process's writer has answered through it


def resolved(batch: Any, local: Local | None = None) -> Any:
    """The batch in column `batch` is resolved (0: logged before batches existed). `local`: what
    the writer of this process has answered for but may not have published yet."""
    by = writers.alias("resolved_w")
    through: Any = by.c.resolved_through
    if local is not None:
        through = sa.case((by.c.id == local[0], sa.func.greatest(through, local[1])), else_=through)
    of_writer = (
        sa.select(through)
        .where(by.c.id == batch.op(">>")(sa.literal_column("32")))
        .correlate_except(by)
    )
    return sa.or_(batch == sa.literal_column("0"), batch <= of_writer.scalar_subquery())


def voided(batch: Any) -> Any:
    """The batch in column `batch` committed although its callers were answered 503."""
    return sa.exists().where(voided_batches.c.batch == batch).correlate_except(voided_batches)


def counts(batch: Any, local: Local | None = None) -> Any:
    """A row of the batch in column `batch` counts: resolved, and not voided."""
    return sa.and_(resolved(batch, local), sa.not_(voided(batch)))


@dataclass
class Account:
    """What one writer connection still owes the database."""

    writer_id: int
    resolved: int = 0  # every batch through this one is answered for
    published: int = 0  # `resolved` as the database last confirmed it
    voids: list[int] = field(default_factory=list)  # committed late, not yet recorded
    doubt: int = 0  # a batch sent on a connection that failed before it came back

    @property
    def owes(self) -> bool:
        return self.resolved != self.published or bool(self.voids)


# -- a writer's own statements (psycopg, on the writer's connection) ---------------------------

REGISTER = """
INSERT INTO writers (host, boot_id, pid, process_start, started_at, seen_at)
VALUES (%s, %s, %s, %s, now(), now()) RETURNING id
"""
LOCK = f"SELECT pg_advisory_lock({locks.WRITER}, %s)"
PUBLISH = "UPDATE writers SET resolved_through = %s, seen_at = now(), closed = %s WHERE id = %s"
VOID = """
INSERT INTO voided_batches (batch, voided_at) SELECT unnest(%s::bigint[]), now()
ON CONFLICT DO NOTHING
"""
# Resolving a previous connection of this process: only once its session is gone (its lock
# free), so a transaction it left open has ended one way or the other.
PREVIOUS = f"""
SELECT pg_try_advisory_xact_lock({locks.WRITER}, id), closed, last_batch
FROM writers WHERE id = %s FOR UPDATE
"""
CLOSE = "UPDATE writers SET resolved_through = %s, closed = true, seen_at = now() WHERE id = %s"


# -- anyone: resolving the rows of writers whose process died ----------------------------------


async def take_over(engine: AsyncEngine, term: lease.Term | None) -> list[int]:
    """Close every writer whose process is gone and whose session has ended, resolving the
    batches it left unresolved as answered; returns their ids. A writer is gone when its process
    is seen dead on this machine, or, for a process of another machine, when its writer was last
    seen ORPHAN_AFTER ago. A living process of this machine is never taken over. Only the
    learner of `term` takes over (`lease.Deposed` otherwise)."""
    stale = writers.c.seen_at < sa.func.now() - ORPHAN_AFTER
    query = sa.select(
        writers.c.id,
        writers.c.host,
        writers.c.boot_id,
        writers.c.pid,
        writers.c.process_start,
        stale.label("stale"),
    ).where(sa.not_(writers.c.closed))
    async with engine.begin() as conn:
        rows = (await conn.execute(query)).all()
        gone = []
        for row in rows:
            living = alive(ProcessId(row.host, row.boot_id, row.pid, row.process_start))
            # a living process of this machine settles its own writers when it reconnects
            if living is False or (living is None and row.stale):
                gone.append(row.id)
        if not gone:
            return []
        await lease.fence(conn, term)
        free = sa.func.pg_try_advisory_xact_lock(locks.WRITER, writers.c.id)
        taken = (
            await conn.execute(
                sa.update(writers)
                .where(writers.c.id.in_(gone), sa.not_(writers.c.closed), free)
                .values(
                    closed=True,
                    resolved_through=sa.literal_column(f"(writers.id::bigint << 32) | {LAST_OF}"),
                )
                .returning(writers.c.id)
            )
        ).scalars()
        taken_ids = list(taken)
    if taken_ids:
        log.info("resolved the batches of writers whose process is gone: %s", taken_ids)
    return taken_ids


APPLICATION_NAME = "decision-service-writer"  # how a writer's session shows in pg_stat_activity


async def connect(url: str, process: ProcessId) -> tuple[psycopg.AsyncConnection[Any], int]:
    """A new writer connection, registered in `writers` and holding its writer lock; its id."""
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME, **KEEPALIVES
    )
    try:
        for setting, value in SERVER_KEEPALIVES.items():
            await conn.execute(f"SET {setting} = {int(value)}")
        p = process
        cursor = await conn.execute(REGISTER, (p.host, p.boot_id, p.pid, p.start))
        row = await cursor.fetchone()
        assert row is not None
        await conn.execute(LOCK, (row[0],))
    except BaseException:
        await conn.close()
        raise
    return conn, int(row[0])


async def publish(
    conn: psycopg.AsyncConnection[Any],
    writer_id: int,
    resolved: int,
    voids: list[int],
    closing: bool,
) -> None:
    """One transaction that records the voids and `resolved_through` (and proves the
    connection): durable when it records voids, else with asynchronous commit (a confirmation
    lost in a crash is recovered as answered, which it was)."""
    async with conn.pipeline():
        await conn.execute("BEGIN")
        if not voids:
            await conn.execute("SET LOCAL synchronous_commit = off")
        else:
            await conn.execute(VOID, (voids,))
        await conn.execute(PUBLISH, (resolved, closing, writer_id))
        await conn.execute("COMMIT")


async def settle(
    conn: psycopg.AsyncConnection[Any], writer_id: int, doubt: int, owed: list[int]
) -> list[int] | None:
    """Settle a previous connection of this process once its session is gone: void the batch
    in `doubt` if it committed and the voids it still `owed`, and close it. None while its
    session still holds its lock; else the batches voided."""
    async with conn.transaction():
        cursor = await conn.execute(PREVIOUS, (writer_id,))
        row = await cursor.fetchone()
        if row is None or not row[0]:
            return None
        _, closed, last_batch = row
        voids = list(owed)
        if doubt and last_batch >= doubt:
            voids.append(doubt)  # the batch in doubt committed
        if closed:
            if voids:
                log.error(
                    "batches %s were answered 503 but another process resolved them as answered",
                    voids,
                )
        else:
            if voids:
                await conn.execute(VOID, (voids,))
            await conn.execute(CLOSE, (last_batch_of(writer_id), writer_id))
    return voids


def is_connection_error(exc: BaseException) -> bool:
    """A failure of the connection itself (the outcome of what was sent is unknown)."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError)
