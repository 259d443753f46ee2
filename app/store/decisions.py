"""Reading logged decisions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.tables import decisions


async def get(engine: AsyncEngine, event_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(decisions).where(decisions.c.event_id == event_id)))
            .mappings()
            .first()
        )
    return dict(row) if row else None
