"""The joiner's and the learner's queries: finalize pending events, read the joined stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store import lease, locks, writers
from app.store.tables import activations, decisions, joined, pending, rewards
from policies.join import Outcome

FINALIZE_BATCH = 5000
GRACE = timedelta(seconds=2)
# A learner step looks for newly rewarded events among the rewards (and activations) received
# since its previous step began, less this margin for transactions that commit late. A reward
# that commits later still is found when its event's wait time ends (same reward, joined later).
LOOKBACK = timedelta(seconds=5)


class JoinedEvent(NamedTuple):
    """One joined event with what learning needs (`joined_after`)."""

    seq: int
    reward: float
    learn: bool
    learning_mode: str
    example: str
    reward_position: int
    probability: float
    policy_position: int
    policy_probability: float


@dataclass(frozen=True)
class Candidate:
    event_id: str
    deferred: bool
    expired: bool
    activated: bool
    rewards: list[float]
    unresolved: bool  # its decision, or a reward or activation in its window, may not count
    void: bool  # its decision's rank call was answered 503 (until a retry answered 201)


# The final events of a step enter `joined` and leave `pending` in one statement (its text is
# fixed, so nothing is compiled per step).
JOIN_EVENTS = """
WITH final AS (
    SELECT * FROM unnest(
        %(seqs)s::bigint[], %(event_ids)s::text[], %(rewards)s::float8[], %(learn)s::bool[],
        %(reasons)s::text[], %(counts)s::int[]
    ) AS f(seq, event_id, reward, learn, reason, reward_count)
), saved AS (
    INSERT INTO joined (seq, event_id, reward, learn, reason, reward_count, joined_at, epoch)
    SELECT seq, event_id, reward, learn, reason, reward_count, now(), %(epoch)s FROM final
)
DELETE FROM pending WHERE event_id IN (SELECT event_id FROM final)
"""


async def hold_finalization(conn: AsyncConnection) -> None:
    """Until this transaction ends, no other one finalizes: positions commit in the order they
    are taken (a reader of `joined` never sees a later one first), and deleting logs never
    races an event becoming final. No JIT in it either: the join query's estimate grows with
    `pending` past jit_above_cost, and PostgreSQL would spend ~30 ms compiling it per step."""
    jit_off = sa.func.set_config("jit", "off", True)
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(locks.FINALIZE), jit_off))


async def finalize(
    engine: AsyncEngine,
    term: lease.Term | None,
    wait: timedelta,
    earliest: bool,
    decide: Callable[[Candidate], Outcome | None],
    since: datetime | None = None,
    local: writers.Local | None = None,
) -> int:
    """Join every pending event that is final now, in one transaction; returns how many.

    Each joined event gets the next position of `joined_seq`, in decision order, and leaves
    `pending` in the same transaction, so an event is joined exactly once. With `earliest`,
    events rewarded within their window are final at once: found among the rewards (and, for
    deferred events, the activations) received since `since`, or within the last wait time
    when `since` is None, so that a step's work does not grow with the reward rate.

    Only rows that count are used, and an event with a row not resolved yet waits
    (`app.store.writers`); `local` is what this process's writer has answered for already.
    Only the learner of `term` finalizes (`lease.Deposed` otherwise).
    """
    now = sa.func.now()
    window_end = pending.c.created_at + wait
    # A reward whose transaction began inside the window may commit a moment after its end:
    # an event counts as expired only GRACE after its window closed.
    expired = pending.c.created_at <= now - (wait + GRACE)
    # Only rows of resolved batches that were not voided count; an event with a row whose
    # batch is not resolved yet waits (app.store.writers).
    reward_counts = writers.counts(rewards.c.batch, local)
    activation_counts = writers.counts(activations.c.batch, local)
    reward_values = (
        sa.select(
            sa.func.array_agg(
                aggregate_order_by(rewards.c.value, rewards.c.received_at, rewards.c.id)
            )
        )
        .where(
            rewards.c.event_id == pending.c.event_id,
            rewards.c.received_at <= window_end,
            reward_counts,
        )
        .scalar_subquery()
    )
    activated = sa.exists().where(
        activations.c.event_id == pending.c.event_id,
        activations.c.received_at <= window_end,
        activation_counts,
    )
    unresolved = sa.or_(
        sa.not_(writers.resolved(pending.c.batch, local)),
        sa.exists().where(
            rewards.c.event_id == pending.c.event_id,
            rewards.c.received_at <= window_end,
            sa.not_(writers.resolved(rewards.c.batch, local)),
        ),
        sa.exists().where(
            activations.c.event_id == pending.c.event_id,
            activations.c.received_at <= window_end,
            sa.not_(writers.resolved(activations.c.batch, local)),
        ),
    )
    # Candidates come from two index ranges: events past their wait time, and (earliest) events
    # with a reward received within their window and not waiting for an activation.
    candidates: Any = sa.select(pending.c.event_id).where(expired)
    if earliest:
        recent: Any = now - (wait + GRACE)
        if since is not None:
            recent = sa.func.greatest(recent, since)
        rewarded = (
            sa.select(pending.c.event_id)
            .join(rewards, rewards.c.event_id == pending.c.event_id)
            .where(
                rewards.c.received_at >= recent,
                rewards.c.received_at <= window_end,
                sa.or_(sa.not_(pending.c.deferred), activated),
            )
        )
        candidates = sa.union(candidates, rewarded)
        if since is not None:  # deferred events rewarded earlier and activated since
            rewarded_before = sa.exists().where(
                rewards.c.event_id == pending.c.event_id, rewards.c.received_at <= window_end
            )
            activated_now = (
                sa.select(pending.c.event_id)
                .join(activations, activations.c.event_id == pending.c.event_id)
                .where(
                    activations.c.received_at >= recent,
                    activations.c.received_at <= window_end,
                    pending.c.deferred,
                    rewarded_before,
                )
            )
            candidates = sa.union(candidates, activated_now)
    query = (
        sa.select(
            pending.c.event_id,
            pending.c.deferred,
            expired.label("expired"),
            activated.label("activated"),
            reward_values.label("rewards"),
            unresolved.label("unresolved"),
            writers.voided(pending.c.batch).label("void"),
        )
        .where(pending.c.event_id.in_(candidates))
        .order_by(pending.c.created_at, pending.c.event_id)
        .limit(FINALIZE_BATCH)
        .with_for_update(of=pending, skip_locked=True)
    )
    async with engine.begin() as conn:
        await hold_finalization(conn)
        await lease.fence(conn, term)
        rows = (await conn.execute(query)).mappings().all()
        final: list[tuple[Candidate, Outcome]] = []
        for row in rows:
            candidate = Candidate(
                row["event_id"],
                row["deferred"],
                row["expired"],
                row["activated"],
                list(row["rewards"] or []),
                row["unresolved"],
                row["void"],
            )
            result = decide(candidate)
            if result is not None:
                final.append((candidate, result))
        if not final:
            return 0
        seqs = (
            (
                await conn.execute(
                    sa.select(sa.func.nextval("joined_seq")).select_from(
                        sa.func.generate_series(1, len(final))
                    )
                )
            )
            .scalars()
            .all()
        )
        ordered = list(zip(sorted(seqs), final, strict=True))
        await conn.exec_driver_sql(
            JOIN_EVENTS,
            {
                "seqs": [seq for seq, _ in ordered],
                "event_ids": [c.event_id for _, (c, _) in ordered],
                "rewards": [o.reward for _, (_, o) in ordered],
                "learn": [o.learn for _, (_, o) in ordered],
                "reasons": [o.reason for _, (_, o) in ordered],
                "counts": [len(c.rewards) for _, (c, _) in ordered],
                "epoch": term.epoch if term else 0,
            },
        )
    return len(final)


async def database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.now()))).scalar_one()


async def joined_after(engine: AsyncEngine, cursor: int, limit: int) -> list[JoinedEvent]:
    """Joined events after position `cursor`, in order, with what learning needs."""
    query = (
        sa.select(  # JoinedEvent's fields, in order
            joined.c.seq,
            joined.c.reward,
            joined.c.learn,
            decisions.c.learning_mode,
            decisions.c.example,
            decisions.c.reward_position,
            decisions.c.probability,
            decisions.c.policy_position,
            decisions.c.policy_probability,
        )
        .select_from(joined.join(decisions, decisions.c.event_id == joined.c.event_id))
        .where(joined.c.seq > cursor)
        .order_by(joined.c.seq)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return list(map(JoinedEvent._make, rows))  # a Row's attributes are slow to read
