"""The service context: every resource the handlers use, created and closed by the lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.keys import Keys
from app.loop.learner import Learner, ServingModel
from app.service_config import Rules
from app.settings import Settings
from app.store import configuration
from app.store.writer import GroupCommitWriter

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    keys: Keys
    engine: AsyncEngine
    document: dict[str, Any]
    writer: GroupCommitWriter = field(init=False)
    learner: Learner = field(init=False)

    def __post_init__(self) -> None:
        self.rules = Rules.of(self.document)
        self.learner = Learner(
            self.engine,
            lambda: self.rules,
            self.settings.snapshots_kept,
            self.settings.join_interval,
        )
        self.writer = GroupCommitWriter(self.engine, self._committed)

    def _committed(self, kinds: set[str]) -> None:
        if kinds & {"reward", "activation"}:
            self.learner.wake()

    @property
    def serving(self) -> ServingModel:
        assert self.learner.serving is not None
        return self.learner.serving

    async def start(self) -> None:
        await self.learner.load()
        self.writer.start()
        self.learner.start()

    async def stop(self) -> None:
        await self.writer.stop()
        await self.learner.stop()

    async def reload(self) -> None:
        """Re-read the configuration and the champion (after a configuration change)."""
        document = await configuration.load_config(self.engine)
        if document is not None:
            self.document = document
            self.rules = Rules.of(document)
        champion = await configuration.champion(self.engine)
        if champion.id != self.serving.row.id:
            await self.learner.load()
