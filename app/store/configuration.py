"""The service configuration document and the policies (one champion, each a fresh model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store import locks
from app.store.election import notify
from app.store.tables import joined, policies, promotions, service_config, snapshots


async def lock_roles(conn: AsyncConnection) -> None:
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(locks.ROLES)))


@dataclass(frozen=True)
class ChampionChange:
    """An admin call that replaces the serving model (a row of the `promotions` audit, made in
    the same transaction): `policy` (PUT configurations/policy), `resetPolicy`, `import` (PUT
    model), `resetModel`, or `rewardSettings` (a change of configurations/service that starts a
    fresh model). Recorded as forced: no evidence was weighed."""

    action: str
    key_id: str
    evidence: dict[str, Any] = field(default_factory=dict)


def model_version(policy_id: int, events_learned: int) -> str:
    """The model version logged with each decision and shown by the API."""
    return f"{policy_id}.{events_learned}"


@dataclass(frozen=True)
class PolicyRow:
    id: int
    name: str
    arguments: str
    role: str
    start_seq: int


async def load_config(engine: AsyncEngine) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(service_config.c.document).where(service_config.c.id == 1))
        ).scalar_one_or_none()
    return dict(row) if row is not None else None


async def ensure_defaults(
    engine: AsyncEngine, document: dict[str, Any], name: str, arguments: str
) -> None:
    """First start: write the default configuration and a champion policy if missing."""
    async with engine.begin() as conn:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(locks.FIRST_START)))
        exists = (
            await conn.execute(sa.select(service_config.c.id).where(service_config.c.id == 1))
        ).first()
        if not exists:
            await conn.execute(
                sa.insert(service_config).values(id=1, document=document, updated_at=sa.func.now())
            )
        champion = (
            await conn.execute(sa.select(policies.c.id).where(policies.c.role == "champion"))
        ).first()
        if not champion:
            await _insert_champion(conn, name, arguments, None)


async def save_config(
    engine: AsyncEngine, document: dict[str, Any], new_model: ChampionChange | None
) -> None:
    """Store the configuration; with `new_model` the champion's model is retired for a fresh
    one, and the change audited."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(service_config)
            .where(service_config.c.id == 1)
            .values(document=document, updated_at=sa.func.now())
        )
        if new_model:
            await lock_roles(conn)
            current = await _champion(conn)
            await _insert_champion(conn, current.name, current.arguments, new_model)
        await notify(conn, "config")


async def champion(engine: AsyncEngine) -> PolicyRow:
    async with engine.connect() as conn:
        return await _champion(conn)


async def replace_champion(
    engine: AsyncEngine, name: str, arguments: str, change: ChampionChange
) -> PolicyRow:
    """A new champion policy with a fresh model; the old one is retired; the change audited."""
    async with engine.begin() as conn:
        await lock_roles(conn)
        row = await _insert_champion(conn, name, arguments, change)
        await notify(conn, "config")
        return row


async def import_model(engine: AsyncEngine, model: bytes, change: ChampionChange) -> PolicyRow:
    """A new champion (same name and arguments) that starts from the imported model bytes; the
    change audited. The model is the new policy's first snapshot, written with its row."""
    async with engine.begin() as conn:
        await lock_roles(conn)
        current = await _champion(conn)
        row = await _insert_champion(conn, current.name, current.arguments, change)
        await conn.execute(
            sa.insert(snapshots).values(
                policy_id=row.id, cursor=row.start_seq, events_learned=0, model=model,
                created_at=sa.func.now(),
            )
        )  # fmt: skip
        await notify(conn, "config")
        return row


async def active(engine: AsyncEngine) -> list[PolicyRow]:
    """The policies that learn: the champion first, then the challengers by age."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(policies)
                .where(policies.c.role.in_(("champion", "challenger")))
                .order_by((policies.c.role != "champion"), policies.c.id)
            )
        ).mappings()
        return [_row(r) for r in rows]


async def model_properties(engine: AsyncEngine, policy_id: int) -> tuple[Any, Any]:
    """(creation time of the champion's model, time of its newest snapshot or creation)."""
    async with engine.connect() as conn:
        created = (
            await conn.execute(sa.select(policies.c.created_at).where(policies.c.id == policy_id))
        ).scalar_one()
        modified = (
            await conn.execute(
                sa.select(sa.func.max(snapshots.c.created_at)).where(
                    snapshots.c.policy_id == policy_id
                )
            )
        ).scalar_one()
    return created, modified or created


async def _champion(conn: AsyncConnection) -> PolicyRow:
    row = (
        (await conn.execute(sa.select(policies).where(policies.c.role == "champion")))
        .mappings()
        .one()
    )
    return _row(row)


def _row(row: Any) -> PolicyRow:
    return PolicyRow(row["id"], row["name"], row["arguments"], row["role"], row["start_seq"])


async def _insert_champion(
    conn: AsyncConnection, name: str, arguments: str, change: ChampionChange | None
) -> PolicyRow:
    """Retire the champion for a new policy; audit `change` (None: the first champion)."""
    previous = (
        await conn.execute(
            sa.update(policies)
            .where(policies.c.role == "champion")
            .values(role="retired")
            .returning(policies.c.id)
        )
    ).scalar_one_or_none()
    row = await insert_policy(conn, name, arguments, "champion")
    if change is not None and previous is not None:
        await conn.execute(
            sa.insert(promotions).values(
                at=sa.func.now(),
                action=change.action,
                forced=True,
                source="admin",
                key_id=change.key_id,
                policy_id=row.id,
                policy_name=name,
                previous_id=previous,
                evidence={"arguments": arguments, **change.evidence},
            )
        )
    return row


async def insert_policy(conn: AsyncConnection, name: str, arguments: str, role: str) -> PolicyRow:
    """A policy with a fresh model that learns the events joined after the newest one."""
    start = (
        await conn.execute(sa.select(sa.func.coalesce(sa.func.max(joined.c.seq), 0)))
    ).scalar_one()
    new_id = (
        await conn.execute(
            sa.insert(policies)
            .values(
                name=name,
                arguments=arguments,
                role=role,
                start_seq=start,
                created_at=sa.func.now(),
            )
            .returning(policies.c.id)
        )
    ).scalar_one()
    return PolicyRow(new_id, name, arguments, role, int(start))
