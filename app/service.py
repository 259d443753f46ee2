"""The service context: every resource the handlers use, created and closed by the lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.keys import Keys
from app.loop.evaluation_runner import Runner
from app.loop.learner import Learner
from app.process import this_process
from app.promotion import EvaluationError, apply_from_evaluation
from app.service_config import Rules
from app.serving import PolicyModel, Registry
from app.settings import Settings
from app.store import configuration, evaluations, lease
from app.store.db import AsyncEngine
from app.store.election import CONNECTED, Election
from app.store.roles import RoleError
from app.store.writer import GroupCommitWriter

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    keys: Keys
    engine: AsyncEngine
    database_url: str
    document: dict[str, Any]
    writer: GroupCommitWriter = field(init=False)
    registry: Registry = field(init=False)
    learner: Learner = field(init=False)
    election: Election = field(init=False)
    runner: Runner = field(init=False)

    def __post_init__(self) -> None:
        self.rules = Rules.of(self.document)
        self.registry = Registry(self.engine, lambda: self.rules)
        self.learner = Learner(
            self.engine,
            lambda: self.rules,
            self.settings.snapshots_kept,
            self.settings.join_interval,
            self.registry,
            self.term,
            self._deposed,
            lambda: self.writer.answered(),
        )
        self.writer = GroupCommitWriter(
            self.database_url, self._committed, self.settings.db_timeout, this_process()
        )
        self.election = Election(
            self.database_url,
            this_process(),
            self.settings.learner_lease,
            self._lead,
            self._step_down,
            self._notified,
        )
        self.runner = Runner(
            self.engine, self.database_url, lambda: self.document, self._evaluated, self.term
        )

    def _committed(self, kinds: set[str]) -> None:
        if kinds & {"reward", "activation"}:
            self.learner.wake()

    @property
    def serving(self) -> PolicyModel:
        assert self.registry.serving is not None
        return self.registry.serving

    @property
    def role(self) -> str:
        return "learner" if self.election.leading else "worker"

    def term(self) -> lease.Term | None:
        """This process's learner term (its fencing token), while it leads."""
        epoch = self.election.epoch
        return None if epoch is None else lease.Term(epoch, self.settings.learner_lease)

    def _deposed(self) -> None:
        """A learner write found a newer epoch: stop learning and give up the lead."""
        self.election.resign()

    async def start(self) -> None:
        # a single process becomes the learner (and catches up) before it serves
        await self.election.start(wait=5.0 if self.settings.workers <= 1 else 0.0)
        if self.registry.serving is None:  # not the learner: serve the newest snapshot
            await self.registry.load()
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
        await self.runner.stop()
        await self.learner.stop()
        await self.election.stop()

    async def _lead(self) -> None:
        await self._reload_document()
        await self.learner.catch_up()
        await self.learner.step()  # events whose wait time closed while no learner ran
        self.learner.start()
        self.runner.start()  # evaluations left Running by a previous learner run again

    async def _step_down(self) -> None:
        await self.runner.stop()
        await self.learner.stop()

    async def _notified(self, payload: str) -> None:
        if self.registry.serving is None:  # still starting: start() loads what is current
            return
        if payload in ("config", CONNECTED):
            await self.reload()
        elif payload.startswith("model:") and not self.election.leading:
            await self.registry.refresh()
        elif payload == "evaluation" and self.election.leading:
            self.runner.wake()
        elif payload.startswith("cancel:") and self.election.leading:
            self.runner.cancel(payload.removeprefix("cancel:"))

    async def _evaluated(self, evaluation_id: str) -> None:
        """After a job: an Auto evaluation applies its optimal policy through the gate."""
        row = await evaluations.get(self.engine, evaluation_id)
        if row is None or row["evaluation_type"] != "Auto" or row["status"] != "Succeeded":
            return
        optimal = row["report"].get("optimalPolicy")
        term = self.term()
        if not optimal or optimal == "Online" or term is None:
            return
        try:
            outcome = await apply_from_evaluation(
                self,
                evaluation_id,
                optimal,
                force=False,
                key_id="auto",
                source="auto",
                fenced_by=term,
            )
        except lease.Deposed:
            return
        except (EvaluationError, RoleError) as exc:
            log.warning("auto-optimization could not apply %s: %s", optimal, exc)
            return
        if outcome is not None:
            log.info(
                "auto-optimization: %s %s", optimal, "promoted" if outcome.promoted else "refused"
            )

    async def _reload_document(self) -> None:
        document = await configuration.load_config(self.engine)
        if document is not None:
            self.document = document
            self.rules = Rules.of(document)

    async def reload(self) -> None:
        """Re-read the configuration and the policies (after a change, or a reconnect).

        A worker swaps in the champion's newest snapshot (a new champion's included); the
        learner loads new policies, drops retired ones and serves the champion."""
        await self._reload_document()
        if not self.election.leading:
            await self.registry.refresh()
            return
        try:
            await self.learner.sync()
        except lease.Deposed as exc:
            log.warning("stopped learning: %s", exc)
            self._deposed()
