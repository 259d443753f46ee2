"""Offline evaluations: the job rows, and the final events of a window as the replay reads them.

The HTTP handlers use the async functions; the evaluation job (a separate process, or the
`evaluate` command) reads the window through a synchronous connection, streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import lease
from app.store.election import notify
from app.store.tables import decisions, evaluations, joined, policies, service_config
from policies.replay import LoggedEvent

MAX_ATTEMPTS = 3  # job starts before an evaluation whose job keeps dying is marked Failed


def _window(start: datetime, end: datetime) -> Any:
    """The final events of decisions made in [start, end) that were shown under Online mode
    (deferred events never activated were not shown, so they are left out)."""
    return (
        sa.select(
            joined.c.seq,
            sa.extract("epoch", decisions.c.created_at).label("timestamp"),
            decisions.c.example,
            decisions.c.reward_position,
            decisions.c.probability,
            joined.c.reward,
        )
        .select_from(joined.join(decisions, decisions.c.event_id == joined.c.event_id))
        .where(
            decisions.c.created_at >= start,
            decisions.c.created_at < end,
            joined.c.learn,
            decisions.c.learning_mode == "Online",
        )
    )


async def count_window(engine: AsyncEngine, start: datetime, end: datetime) -> int:
    query = sa.select(sa.func.count()).select_from(_window(start, end).subquery())
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def count_window_sync(conn: Connection, start: datetime, end: datetime) -> int:
    query = sa.select(sa.func.count()).select_from(_window(start, end).subquery())
    return int(conn.execute(query).scalar_one())


def window_events(conn: Connection, start: datetime, end: datetime) -> Iterator[LoggedEvent]:
    """The window's final events in learning order, streamed."""
    query = _window(start, end).order_by(joined.c.seq)
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
    for seq, timestamp, example, position, probability, reward in result:
        yield LoggedEvent(seq, float(timestamp), example, position, probability, reward)


def champion_and_exploration(conn: Connection) -> tuple[int, str, str, float]:
    """(id, name, arguments) of the champion and the configured exploration (0..1)."""
    policy_id, name, arguments = conn.execute(
        sa.select(policies.c.id, policies.c.name, policies.c.arguments).where(
            policies.c.role == "champion"
        )
    ).one()
    document = conn.execute(
        sa.select(service_config.c.document).where(service_config.c.id == 1)
    ).scalar_one()
    return int(policy_id), name, arguments, float(document["explorationPercentage"])


async def create(
    engine: AsyncEngine, row: dict[str, Any], fenced_by: lease.Term | None = None
) -> bool:
    """Insert a Running evaluation; False when the id exists. Wakes the job runner.
    `fenced_by`: the learner's term, when the learner creates it (auto-optimization)."""
    async with engine.begin() as conn:
        if fenced_by is not None:
            await lease.fence(conn, fenced_by)
        inserted = (
            await conn.execute(
                insert(evaluations)
                .values(
                    **row,
                    created_at=sa.func.now(),
                    status="Running",
                    attempts=0,
                )
                .on_conflict_do_nothing()
                .returning(evaluations.c.id)
            )
        ).first()
        if inserted is not None:
            await notify(conn, "evaluation")
        return inserted is not None


async def get(engine: AsyncEngine, evaluation_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(evaluations).where(evaluations.c.id == evaluation_id)))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def list_all(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every evaluation without its report, newest first."""
    columns = [
        *(c for c in evaluations.c if c.name != "report"),
        evaluations.c.report["optimalPolicy"].astext.label("optimal_policy"),
    ]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(*columns).order_by(evaluations.c.created_at.desc()))
        ).mappings()
        return [dict(r) for r in rows]


async def delete(engine: AsyncEngine, evaluation_id: str) -> bool:
    """Delete an evaluation; the learner stops its job if it is running (NOTIFY `cancel:`)."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(evaluations).where(evaluations.c.id == evaluation_id))
        if result.rowcount:
            await notify(conn, f"cancel:{evaluation_id}")
        return result.rowcount > 0


async def latest_auto(engine: AsyncEngine) -> datetime | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(sa.func.max(evaluations.c.created_at)).where(
                    evaluations.c.evaluation_type == "Auto"
                )
            )
        ).scalar_one()


async def claim_next(engine: AsyncEngine, term: lease.Term | None) -> str | None:
    """The oldest Running evaluation, with its attempt counted. Evaluations whose job died
    MAX_ATTEMPTS times are marked Failed first. Only the learner of `term` claims."""
    async with engine.begin() as conn:
        await lease.fence(conn, term)
        gave_up = evaluations.c.status == "Running", evaluations.c.attempts >= MAX_ATTEMPTS
        await conn.execute(
            sa.update(evaluations)
            .where(*gave_up)
            .values(
                status="Failed",
                finished_at=sa.func.now(),
                error="The evaluation job stopped unexpectedly "
                + sa.cast(evaluations.c.attempts, sa.Text)
                + " times.",
            )
        )
        query = (
            sa.select(evaluations.c.id)
            .where(evaluations.c.status == "Running")
            .order_by(evaluations.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        evaluation_id = (await conn.execute(query)).scalar_one_or_none()
        if evaluation_id is None:
            return None
        await conn.execute(
            sa.update(evaluations)
            .where(evaluations.c.id == evaluation_id)
            .values(attempts=evaluations.c.attempts + 1)
        )
        return str(evaluation_id)


def load_sync(conn: Connection, evaluation_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(sa.select(evaluations).where(evaluations.c.id == evaluation_id))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def finish_sync(
    conn: Connection,
    epoch: int,
    evaluation_id: str,
    created_at: datetime,
    report: dict[str, Any] | None,
    error: str | None,
) -> None:
    """Succeeded with its report, or Failed with the error, if the evaluation is still the one
    the job read (not deleted, nor deleted and created again under its id) and still Running;
    only while the learner that started the job (`epoch`) still leads (`lease.Deposed`)."""
    lease.fence_sync(conn, epoch)
    conn.execute(
        sa.update(evaluations)
        .where(
            evaluations.c.id == evaluation_id,
            evaluations.c.created_at == created_at,
            evaluations.c.status == "Running",
        )
        .values(
            status="Failed" if error else "Succeeded",
            report=report,
            error=error,
            finished_at=sa.func.now(),
        )
    )
