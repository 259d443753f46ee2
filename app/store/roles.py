"""Who serves: challengers added and retired, the champion swapped, and the audit of every swap.

Every change of role happens in one transaction that also notifies the workers, so they all
switch together; the learner keeps each policy's model across a swap (a promoted challenger
serves the model it trained in shadow).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store import lease
from app.store.configuration import insert_policy, lock_roles
from app.store.election import notify
from app.store.tables import policies, policy_scores, promotions, refused_events, snapshots

MAX_CHALLENGERS = 10


class RoleError(Exception):
    """A change of role that cannot be made; `reason` is a stable word for the API."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PolicyInfo:
    id: int
    name: str
    arguments: str
    role: str
    start_seq: int
    created_at: datetime
    events_learned: int  # as of its newest snapshot
    cursor: int
    events_refused: int  # joined events its VW refused to learn (saved with its snapshots)


@dataclass(frozen=True)
class Audit:
    action: str  # promote | refuse | rollback
    forced: bool
    source: str  # admin | applyFromEvaluation | auto
    key_id: str
    policy_id: int | None  # None: a refused candidate that was never created
    policy_name: str
    previous_id: int
    evidence: dict[str, Any]
    evaluation_id: str | None = None


async def _champion_id(conn: AsyncConnection) -> int:
    return int(
        (
            await conn.execute(sa.select(policies.c.id).where(policies.c.role == "champion"))
        ).scalar_one()
    )


async def _champion_still(conn: AsyncConnection, expected: int) -> int:
    """The champion's id, if it is still `expected` (checked under the roles lock)."""
    if await _champion_id(conn) != expected:
        raise RoleError("changed", "The champion changed meanwhile; ask again.")
    return expected


async def _active_roles(conn: AsyncConnection) -> list[Any]:
    """(name, role) of the champion and the challengers."""
    query = sa.select(policies.c.name, policies.c.role).where(
        policies.c.role.in_(("champion", "challenger"))
    )
    return list((await conn.execute(query)).all())


async def list_policies(engine: AsyncEngine) -> list[PolicyInfo]:
    """Every policy: the champion, the challengers, then the retired ones, newest first; what
    each has learned as of its newest snapshot (the same for every process that asks)."""
    refused = (
        sa.select(refused_events.c.policy_id, sa.func.count().label("refused"))
        .group_by(refused_events.c.policy_id)
        .subquery()
    )
    newest = (
        sa.select(
            snapshots.c.policy_id,
            sa.func.max(snapshots.c.cursor).label("cursor"),
            sa.func.max(snapshots.c.events_learned).label("events_learned"),
        )
        .group_by(snapshots.c.policy_id)
        .subquery()
    )
    order = sa.case({"champion": 0, "challenger": 1}, value=policies.c.role, else_=2)
    query = (
        sa.select(policies, newest.c.cursor, newest.c.events_learned, refused.c.refused)
        .select_from(
            policies.outerjoin(newest, newest.c.policy_id == policies.c.id).outerjoin(
                refused, refused.c.policy_id == policies.c.id
            )
        )
        .order_by(order, policies.c.id.desc())
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        PolicyInfo(
            r["id"],
            r["name"],
            r["arguments"],
            r["role"],
            r["start_seq"],
            r["created_at"],
            int(r["events_learned"] or 0),
            int(r["cursor"] if r["cursor"] is not None else r["start_seq"]),
            int(r["refused"] or 0),
        )
        for r in rows
    ]


async def add_challenger(engine: AsyncEngine, name: str, arguments: str) -> int:
    """A challenger with a fresh model that learns the events final from now on; its id."""
    async with engine.begin() as conn:
        await lock_roles(conn)
        active = await _active_roles(conn)
        if any(n == name for n, _ in active):
            raise RoleError("name", f"A policy named '{name}' is already active.")
        if sum(role == "challenger" for _, role in active) >= MAX_CHALLENGERS:
            raise RoleError(
                "limit", f"At most {MAX_CHALLENGERS} challengers can learn at once; retire one."
            )
        new_id = (await insert_policy(conn, name, arguments, "challenger")).id
        await notify(conn, "config")
        return int(new_id)


async def _active_named(conn: AsyncConnection, name: str) -> Any:
    row = (
        (
            await conn.execute(
                sa.select(policies)
                .where(policies.c.name == name, policies.c.role.in_(("champion", "challenger")))
                .order_by(policies.c.role == "champion")
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise RoleError("missing", f"No active policy is named '{name}'.")
    return row


async def retire(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as conn:
        await lock_roles(conn)
        row = await _active_named(conn, name)
        if row["role"] == "champion":
            raise RoleError(
                "champion", f"'{name}' is the champion; promote another policy before retiring it."
            )
        await conn.execute(
            sa.update(policies).where(policies.c.id == row["id"]).values(role="retired")
        )
        await notify(conn, "config")


async def challenger_named(engine: AsyncEngine, name: str) -> tuple[int, int]:
    """(the challenger's id, the champion's id); RoleError when `name` is not a challenger."""
    async with engine.connect() as conn:
        row = await _active_named(conn, name)
        if row["role"] == "champion":
            raise RoleError("champion", f"'{name}' is already the champion.")
        return int(row["id"]), await _champion_id(conn)


async def policy_name(engine: AsyncEngine, policy_id: int) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(sa.select(policies.c.name).where(policies.c.id == policy_id))
            ).scalar_one()
        )


async def champion_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await _champion_id(conn)


async def paired_scores(
    engine: AsyncEngine, challenger_id: int, champion_id: int
) -> dict[str, np.ndarray]:
    """The final events both policies scored: reward, logging probability, and each policy's
    probability of the logged action (recorded before it learned the event)."""
    challenger = policy_scores.alias("challenger")
    champion = policy_scores.alias("champion")
    query = (
        sa.select(
            challenger.c.reward,
            challenger.c.logged_probability,
            challenger.c.probability,
            champion.c.probability,
        )
        .select_from(challenger.join(champion, champion.c.seq == challenger.c.seq))
        .where(challenger.c.policy_id == challenger_id, champion.c.policy_id == champion_id)
        .order_by(challenger.c.seq)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    data = np.array(rows, dtype=float).reshape(-1, 4)
    return {
        "reward": data[:, 0],
        "pscore": data[:, 1],
        "challenger_prob": data[:, 2],
        "champion_prob": data[:, 3],
    }


async def score_sums(engine: AsyncEngine, champion_id: int) -> dict[int, dict[str, float]]:
    """Per active policy, additive sums of its scores over the final events it scored: n, Σw,
    Σw², Σwr, Σ(wr)², Σw²r, and of the paired difference with the champion: m, Σd, Σd²."""
    w = policy_scores.c.probability / policy_scores.c.logged_probability
    r = policy_scores.c.reward
    active = sa.select(policies.c.id).where(policies.c.role.in_(("champion", "challenger")))
    moments = (
        sa.select(
            policy_scores.c.policy_id,
            sa.func.count(),
            sa.func.sum(w),
            sa.func.sum(w * w),
            sa.func.sum(w * r),
            sa.func.sum(w * r * w * r),
            sa.func.sum(w * w * r),
        )
        .where(policy_scores.c.policy_id.in_(active))
        .group_by(policy_scores.c.policy_id)
    )
    champion = policy_scores.alias("champion")
    d = r * (policy_scores.c.probability - champion.c.probability) / champion.c.logged_probability
    paired = (
        sa.select(policy_scores.c.policy_id, sa.func.count(), sa.func.sum(d), sa.func.sum(d * d))
        .select_from(policy_scores.join(champion, champion.c.seq == policy_scores.c.seq))
        .where(
            champion.c.policy_id == champion_id,
            policy_scores.c.policy_id.in_(active),
            policy_scores.c.policy_id != champion_id,
        )
        .group_by(policy_scores.c.policy_id)
    )
    out: dict[int, dict[str, float]] = {}
    async with engine.connect() as conn:
        for pid, n, sw, sw2, swr, swr2, sw2r in (await conn.execute(moments)).all():
            out[pid] = {
                "n": n, "sum_w": sw, "sum_w2": sw2, "sum_wr": swr, "sum_wr2": swr2,
                "sum_w2r": sw2r,
            }  # fmt: skip
        for pid, m, sd, sd2 in (await conn.execute(paired)).all():
            out.setdefault(pid, {}).update({"paired_n": m, "paired_sum": sd, "paired_sum_sq": sd2})
    return out


async def swap(engine: AsyncEngine, audit: Audit, fenced_by: lease.Term | None = None) -> None:
    """Make `audit.policy_id` the champion and `audit.previous_id` a challenger, if the
    champion is still `previous_id`; record the audit row; notify every worker. `fenced_by`:
    the learner's term, when the learner makes the change (auto-optimization)."""
    async with engine.begin() as conn:
        await _fence(conn, fenced_by)
        await lock_roles(conn)
        champion = await _champion_still(conn, audit.previous_id)
        role = (
            await conn.execute(sa.select(policies.c.role).where(policies.c.id == audit.policy_id))
        ).scalar_one_or_none()
        if role != "challenger":
            raise RoleError("missing", "That policy is no longer a challenger.")
        await conn.execute(
            sa.update(policies).where(policies.c.id == champion).values(role="challenger")
        )
        await conn.execute(
            sa.update(policies).where(policies.c.id == audit.policy_id).values(role="champion")
        )
        await _insert_audit(conn, audit)
        await notify(conn, "config")


async def install(
    engine: AsyncEngine,
    name: str,
    arguments: str,
    audit: Audit,
    fenced_by: lease.Term | None = None,
) -> int:
    """A new champion with a fresh model (from an evaluation); the old champion becomes a
    challenger. A name already active gets a number. `fenced_by` as for `swap`."""
    async with engine.begin() as conn:
        await _fence(conn, fenced_by)
        await lock_roles(conn)
        champion = await _champion_still(conn, audit.previous_id)
        active = await _active_roles(conn)
        if sum(role == "challenger" for _, role in active) >= MAX_CHALLENGERS:
            raise RoleError(
                "limit",
                f"The champion would become the {MAX_CHALLENGERS + 1}th challenger; retire one.",
            )
        names = {n for n, _ in active}
        base, count = name, 1
        while name in names:  # an active name: number it
            count += 1
            name = f"{base} ({count})"
        await conn.execute(
            sa.update(policies).where(policies.c.id == champion).values(role="challenger")
        )
        new_id = (await insert_policy(conn, name, arguments, "champion")).id
        await _insert_audit(conn, replace(audit, policy_id=new_id, policy_name=name))
        await notify(conn, "config")
        return int(new_id)


async def record(engine: AsyncEngine, audit: Audit, fenced_by: lease.Term | None = None) -> None:
    """An audit row alone (a refusal). `fenced_by` as for `swap`."""
    async with engine.begin() as conn:
        await _fence(conn, fenced_by)
        await _insert_audit(conn, audit)


async def last_swap(engine: AsyncEngine) -> dict[str, Any] | None:
    """The newest promotion or rollback that changed the champion (a rollback undoes only a
    promotion: after a rollback there is nothing to roll back until the next promotion)."""
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(promotions)
                    .where(promotions.c.action.in_(("promote", "rollback")))
                    .order_by(promotions.c.id.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def audit_rows(engine: AsyncEngine, limit: int = 100) -> list[dict[str, Any]]:
    previous = policies.alias("previous")
    query = (
        sa.select(promotions, previous.c.name.label("previous"))
        .select_from(promotions.join(previous, previous.c.id == promotions.c.previous_id))
        .order_by(promotions.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def _fence(conn: AsyncConnection, term: lease.Term | None) -> None:
    if term is not None:
        await lease.fence(conn, term)


async def _insert_audit(conn: AsyncConnection, audit: Audit) -> None:
    await conn.execute(
        sa.insert(promotions).values(
            at=sa.func.now(),
            action=audit.action,
            forced=audit.forced,
            source=audit.source,
            key_id=audit.key_id,
            policy_id=audit.policy_id,
            policy_name=audit.policy_name,
            previous_id=audit.previous_id,
            evaluation_id=audit.evaluation_id,
            evidence=audit.evidence,
        )
    )
