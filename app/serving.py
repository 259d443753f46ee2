"""The model this process serves, and where every process gets it.

Every worker holds a `Registry`: the champion's model it ranks with, swapped atomically (one
attribute) when a newer snapshot exists. The elected learner (`app.loop.learner`) hands the
registry the very `PolicyModel` it learns on, so a learned reward shows in its next rank.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from app.service_config import Rules
from app.store import configuration, snapshots
from app.store.configuration import PolicyRow, model_version
from app.store.db import AsyncEngine
from policies.arguments import with_epsilon
from policies.vw import Policy

log = logging.getLogger(__name__)


@dataclass
class PolicyModel:
    """One policy's model, where it is in the joined stream, and what it recorded since its
    newest snapshot."""

    row: PolicyRow
    policy: Policy
    cursor: int  # last joined position learned
    events_learned: int
    saved_cursor: int  # cursor of the newest snapshot
    # (seq, p, logging probability, reward) recorded since the last snapshot
    scores: list[tuple[int, float, float, float]] = field(default_factory=list)
    # (seq, VW's reason) of the events VW refused to learn since the last snapshot
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def version(self) -> str:
        return model_version(self.row.id, self.events_learned)


async def newest_model(
    engine: AsyncEngine, row: PolicyRow, exploration: float, current: PolicyModel | None = None
) -> PolicyModel:
    """Policy `row`'s newest snapshot as a model (a fresh one without a snapshot); `current`
    itself when it is that policy's and not behind the snapshot."""
    arguments = with_epsilon(row.arguments, exploration)
    snap = await snapshots.latest(engine, row.id)
    same_policy = current is not None and current.row.id == row.id
    if same_policy and (snap is None or snap.cursor <= current.cursor):  # type: ignore[union-attr]
        return current  # type: ignore[return-value]
    if snap is None:
        return PolicyModel(row, Policy(arguments), row.start_seq, 0, row.start_seq)
    policy = await asyncio.to_thread(Policy.from_bytes, arguments, snap.model)
    return PolicyModel(row, policy, snap.cursor, snap.events_learned, snap.cursor)


class Registry:
    """The champion's model this process serves."""

    def __init__(self, engine: AsyncEngine, rules: Callable[[], Rules]) -> None:
        self._engine = engine
        self._rules = rules
        self._lock = asyncio.Lock()
        self.serving: PolicyModel | None = None

    def serve(self, model: PolicyModel) -> None:
        """Serve `model` from now on (the learner's own champion)."""
        self.serving = model

    async def load(self) -> None:
        """Serve the champion's newest snapshot."""
        async with self._lock:
            champion = await configuration.champion(self._engine)
            self.serving = await newest_model(self._engine, champion, self._rules().exploration)
            log.info("serving policy %s, model version %s", champion.name, self.serving.version)

    async def refresh(self) -> None:
        """A worker that is not the learner: swap in the champion's newest snapshot if newer."""
        async with self._lock:
            current = self.serving
            row = await configuration.champion(self._engine)
            self.serving = await newest_model(self._engine, row, self._rules().exploration, current)
