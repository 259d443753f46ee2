"""Model snapshots: the model bytes and the position of the last event learned, together."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import lease
from app.store.election import notify
from app.store.tables import policies, policy_scores, refused_events, snapshots


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


class SnapshotBehind(RuntimeError):
    """A snapshot whose cursor is behind the policy's newest one (never stored)."""


# A policy's snapshots never go backwards: the new one is stored only if its cursor is at least
# the newest one's (with fencing this always holds; the check makes it a fact of the table).
INSERT_SNAPSHOT = sa.text("""
INSERT INTO snapshots (policy_id, cursor, events_learned, model, created_at, epoch)
SELECT :policy_id, :cursor, :events_learned, :model, now(), :epoch
WHERE :cursor >= (
    SELECT coalesce(max(cursor), :cursor) FROM snapshots WHERE policy_id = :policy_id
)
RETURNING id
""").bindparams(sa.bindparam("model", type_=sa.LargeBinary))


@dataclass(frozen=True)
class Saved:
    """What a policy saves together: its snapshot, the scores it recorded since its previous
    one (seq, probability, logging probability, reward), and the events its VW refused (seq,
    reason)."""

    snapshot: Snapshot
    scores: list[tuple[int, float, float, float]]
    refused: list[tuple[int, str]]


async def save(
    engine: AsyncEngine,
    term: lease.Term | None,
    saved: list[Saved],
    keep: int,
    champion_id: int,
) -> None:
    """Store each policy's snapshot with the scores and refusals it recorded since its previous
    one, and drop all but the newest `keep` snapshots of each, in one transaction: a crash loses
    all or none, and replaying from the older snapshot records the same scores again. Only the
    learner of `term` saves (`lease.Deposed` otherwise); a score or refusal recorded twice, or a
    snapshot behind the newest, fails the whole transaction."""
    async with engine.begin() as conn:
        await lease.fence(conn, term)
        assert term is not None
        for item in saved:
            snapshot = item.snapshot
            if item.scores:
                await conn.execute(
                    sa.insert(policy_scores),
                    [
                        {
                            "policy_id": snapshot.policy_id,
                            "seq": seq,
                            "probability": p,
                            "logged_probability": logged,
                            "reward": reward,
                        }
                        for seq, p, logged, reward in item.scores
                    ],
                )
            if item.refused:
                await conn.execute(
                    sa.insert(refused_events).values(refused_at=sa.func.now()),
                    [
                        {"policy_id": snapshot.policy_id, "seq": seq, "reason": reason}
                        for seq, reason in item.refused
                    ],
                )
            stored = await conn.execute(
                INSERT_SNAPSHOT,
                {
                    "policy_id": snapshot.policy_id,
                    "cursor": snapshot.cursor,
                    "events_learned": snapshot.events_learned,
                    "model": snapshot.model,
                    "epoch": term.epoch,
                },
            )
            if stored.first() is None:
                raise SnapshotBehind(
                    f"policy {snapshot.policy_id}: a snapshot at {snapshot.cursor} is behind "
                    "the newest one"
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
        if any(item.snapshot.policy_id == champion_id for item in saved):
            await notify(conn, f"model:{champion_id}")
