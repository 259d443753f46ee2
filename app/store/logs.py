"""The logs as a whole: their date range, deleting them, and the retention purge.

Deleting never removes what the learner still needs: a final event after the position of the
champion's newest snapshot stays (with its decision and rewards) until a snapshot covers it,
so recovery can still replay it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store import lease
from app.store.joins import hold_finalization
from app.store.tables import (
    activations,
    decisions,
    joined,
    pending,
    policies,
    policy_scores,
    rewards,
    snapshots,
)

PURGE_BATCH = 10_000
MAX_DAYS = 365_000  # longer retention keeps everything (and stays a valid interval)


async def date_range(engine: AsyncEngine) -> tuple[datetime | None, datetime | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(sa.func.min(decisions.c.created_at), sa.func.max(decisions.c.created_at))
            )
        ).one()
    return row[0], row[1]


async def late_rewards(engine: AsyncEngine, wait: timedelta) -> int:
    """Rewards received after their event's wait time: stored, never learned."""
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(
                        rewards.join(decisions, decisions.c.event_id == rewards.c.event_id)
                    )
                    .where(rewards.c.received_at > decisions.c.created_at + wait)
                )
            ).scalar_one()
        )


async def _safe_position(conn: AsyncConnection) -> int:
    """The position that the newest snapshot of every active policy has learned past."""
    rows = (
        await conn.execute(
            sa.select(policies.c.start_seq, sa.func.max(snapshots.c.cursor))
            .select_from(policies.outerjoin(snapshots, snapshots.c.policy_id == policies.c.id))
            .where(policies.c.role.in_(("champion", "challenger")))
            .group_by(policies.c.id, policies.c.start_seq)
        )
    ).all()
    return min((cursor if cursor is not None else start for start, cursor in rows), default=0)


async def _delete_events(conn: AsyncConnection, event_ids: Any) -> int:
    """Delete the decisions in `event_ids` (a select) with everything logged for them."""
    ids = [r[0] for r in (await conn.execute(event_ids)).all()]
    if not ids:
        return 0
    seqs = sa.select(joined.c.seq).where(joined.c.event_id.in_(ids))
    await conn.execute(sa.delete(policy_scores).where(policy_scores.c.seq.in_(seqs)))
    for table in (rewards, activations, joined, pending, decisions):
        await conn.execute(sa.delete(table).where(table.c.event_id.in_(ids)))
    return len(ids)


async def delete_all(engine: AsyncEngine) -> int:
    """Personalizer's DELETE logs: every decision, reward and activation the learner is done with
    (and every event not final yet). Returns how many decisions were deleted."""
    deleted = 0
    async with engine.begin() as conn:
        await hold_finalization(conn)
        safe = await _safe_position(conn)
        needed = sa.select(joined.c.event_id).where(joined.c.seq > safe)
        while True:
            batch = await _delete_events(
                conn,
                sa.select(decisions.c.event_id)
                .where(decisions.c.event_id.not_in(needed))
                .limit(PURGE_BATCH),
            )
            deleted += batch
            if batch < PURGE_BATCH:
                break
        for table in (rewards, activations):  # rows whose decision is gone (never ranked here)
            await conn.execute(
                sa.delete(table).where(table.c.event_id.not_in(sa.select(decisions.c.event_id)))
            )
    return deleted


async def purge_older_than(engine: AsyncEngine, days: int, term: lease.Term | None) -> int:
    """Retention: delete final, learned-past events older than `days` days, in batches; only
    the learner of `term` purges (`lease.Deposed` otherwise)."""
    deleted = 0
    while True:
        async with engine.begin() as conn:
            await hold_finalization(conn)
            await lease.fence(conn, term)
            safe = await _safe_position(conn)
            batch = await _delete_events(
                conn,
                sa.select(joined.c.event_id)
                .join(decisions, decisions.c.event_id == joined.c.event_id)
                .where(
                    joined.c.seq <= safe,
                    decisions.c.created_at
                    < sa.func.now() - sa.text(f"interval '{int(days)} days'"),
                )
                .limit(PURGE_BATCH),
            )
        deleted += batch
        if batch < PURGE_BATCH:
            return deleted
