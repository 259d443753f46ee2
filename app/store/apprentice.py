"""Apprentice-mode metrics, as Personalizer reported them in `latestApprenticeModeMetrics`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.tables import decisions, joined

BATCH = 1000  # Personalizer's "most recent 1000 events"


def _sums(events: Any) -> Any:
    imitated = events.c.policy_action == events.c.reward_action
    return sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(events.c.reward), 0.0),
        sa.func.coalesce(sa.func.sum(sa.case((imitated, events.c.reward), else_=0.0)), 0.0),
        sa.func.coalesce(sa.func.sum(sa.case((imitated, 1), else_=0)), 0),
        sa.func.min(events.c.created_at),
        sa.func.max(events.c.joined_at),
    )


async def metrics(engine: AsyncEngine) -> dict[str, Any] | None:
    """Over every final Apprentice event and over the last 1,000: events, the rewards the
    baseline earned, and the events (and their rewards) where the policy's own draw matched
    the baseline. None when no Apprentice event is final yet."""
    events = (
        sa.select(
            joined.c.seq, joined.c.reward, joined.c.joined_at, decisions.c.created_at,
            decisions.c.policy_action, decisions.c.reward_action,
        )
        .select_from(joined.join(decisions, decisions.c.event_id == joined.c.event_id))
        .where(decisions.c.learning_mode == "Apprentice", joined.c.learn)
    )  # fmt: skip
    all_events = events.subquery()
    last = events.order_by(joined.c.seq.desc()).limit(BATCH).subquery()
    async with engine.connect() as conn:
        total = (await conn.execute(_sums(all_events))).one()
        recent = (await conn.execute(_sums(last))).one()
    if total[0] == 0:
        return None

    def block(row: Any) -> dict[str, Any]:
        return {
            "numberOfEvents": int(row[0]),
            "sumOfRewards": float(row[1]),
            "sumOfImitatedRewards": float(row[2]),
            "numberOfImitatedEvents": int(row[3]),
        }

    return {
        "startTime": total[4].isoformat(),
        "lastProcessedEventTime": total[5].isoformat(),
        **block(total),
        "lastBatchMetrics": block(recent),
    }
