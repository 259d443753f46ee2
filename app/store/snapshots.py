"""Model snapshots: the model bytes and the position of the last event learned, together."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.election import notify
from app.store.tables import policies, policy_scores, snapshots


@dataclass(frozen=True)
class Snapshot:
    policy_id: int
    cursor: int
    events_learned: int
    model: bytes


async def latest(engine: AsyncEngine, policy_id: int) -> Snapshot | None:
    query = (
        sa.select(snapshots)
        .where(snapshots.c.policy_id == policy_id)
        .order_by(snapshots.c.cursor.desc(), snapshots.c.id.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return Snapshot(row["policy_id"], row["cursor"], row["events_learned"], bytes(row["model"]))


async def save(
    engine: AsyncEngine,
    saved: list[tuple[Snapshot, list[tuple[int, float, float, float]]]],
    keep: int,
    champion_id: int,
) -> None:
    """Store each policy's snapshot with the scores it recorded since its previous one, and drop
    all but the newest `keep` snapshots of each, in one transaction: a crash loses both or
    neither, and replaying from the older snapshot records the same scores again."""
    async with engine.begin() as conn:
        for snapshot, scores in saved:
            if scores:
                await conn.execute(
                    insert(policy_scores).on_conflict_do_nothing(),
                    [
                        {
                            "policy_id": snapshot.policy_id,
                            "seq": seq,
                            "probability": p,
                            "logged_probability": logged,
                            "reward": reward,
                        }
                        for seq, p, logged, reward in scores
                    ],
                )
            await conn.execute(
                sa.insert(snapshots).values(
                    policy_id=snapshot.policy_id,
                    cursor=snapshot.cursor,
                    events_learned=snapshot.events_learned,
                    model=snapshot.model,
                    created_at=sa.func.now(),
                )
            )
            newest = (
                sa.select(snapshots.c.id)
                .where(snapshots.c.policy_id == snapshot.policy_id)
                .order_by(snapshots.c.cursor.desc(), snapshots.c.id.desc())
                .limit(keep)
            )
            await conn.execute(
                sa.delete(snapshots).where(
                    snapshots.c.policy_id == snapshot.policy_id, snapshots.c.id.not_in(newest)
                )
            )
        retired = sa.select(policies.c.id).where(policies.c.role == "retired")
        await conn.execute(sa.delete(snapshots).where(snapshots.c.policy_id.in_(retired)))
        if any(snapshot.policy_id == champion_id for snapshot, _ in saved):
            await notify(conn, f"model:{champion_id}")
