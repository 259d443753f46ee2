"""The learning loop: join final events, learn them in order, snapshot the model.

The serving model and the learner share one VW workspace in this process, so a learned
reward shows in the next rank. Every final event has a position (`joined.seq`); the model
remembers the last position it learned (`cursor`), and a snapshot stores the bytes and the
cursor together, so a restart loads the newest snapshot and learns what follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from app.service_config import Rules
from app.store import configuration, joins, logs, snapshots
from app.store.configuration import PolicyRow
from app.store.db import is_disconnect
from policies import join
from policies.arguments import with_epsilon
from policies.ranking import lesson
from policies.vw import Policy

log = logging.getLogger(__name__)

LEARN_BATCH = 500
PURGE_EVERY_S = 600.0  # how often the learner applies logRetentionDays
YIELD_EVERY = 50  # events learned between yields to the event loop (keeps rank latency low)


@dataclass
class ServingModel:
    row: PolicyRow
    policy: Policy
    cursor: int  # last joined position learned
    events_learned: int
    saved_cursor: int  # cursor of the newest snapshot

    @property
    def version(self) -> str:
        return f"{self.row.id}.{self.events_learned}"


class Learner:
    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Rules],
        snapshots_kept: int,
        join_interval: float,
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._snapshots_kept = snapshots_kept
        self._join_interval = join_interval
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one step, load or snapshot at a time
        self._task: asyncio.Task[None] | None = None
        self._last_snapshot = time.monotonic()
        self._last_purge = time.monotonic() - PURGE_EVERY_S + 60  # first purge after a minute
        self._purge_task: asyncio.Task[None] | None = None
        self.serving: ServingModel | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def load(self, catch_up: bool) -> None:
        """Serve the champion's newest snapshot; with `catch_up` (the learner), first learn
        every joined event after its cursor."""
        async with self._lock:
            model = await self._newest_model()
            if catch_up:
                await self._learn_available(model)
            self.serving = model
            log.info("serving policy %s, model version %s", model.row.name, model.version)

    async def refresh(self) -> None:
        """A worker that is not the learner: swap in the champion's newest snapshot if newer."""
        async with self._lock:
            current = self.serving
            model = await self._newest_model(current)
            if current is None or model is not current:
                self.serving = model

    async def _newest_model(self, current: ServingModel | None = None) -> ServingModel:
        row = await configuration.champion(self._engine)
        arguments = with_epsilon(row.arguments, self._rules().exploration)
        snap = await snapshots.latest(self._engine, row.id)
        same_policy = current is not None and current.row.id == row.id
        if same_policy and (snap is None or snap.cursor <= current.cursor):  # type: ignore[union-attr]
            return current  # type: ignore[return-value]
        if snap is None:
            return ServingModel(row, Policy(arguments), row.start_seq, 0, row.start_seq)
        policy = await asyncio.to_thread(Policy.from_bytes, arguments, snap.model)
        return ServingModel(row, policy, snap.cursor, snap.events_learned, snap.cursor)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="learner")

    async def stop(self) -> None:
        """Stop learning; a learner saves a last snapshot."""
        if not self.running:
            return
        assert self._task is not None
        self._task.cancel()
        if self._purge_task is not None:
            self._purge_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(Exception):
            await self.snapshot()

    def wake(self) -> None:
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._join_interval)
            self._wake.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_disconnect(exc):
                    log.warning("learner step failed, database unavailable: %s", exc)
                else:
                    log.exception("learner step failed; retrying")
                await asyncio.sleep(min(5.0, self._join_interval * 4))

    async def step(self) -> None:
        rules = self._rules()
        async with self._lock:
            while (
                await joins.finalize(
                    self._engine,
                    rules.wait,
                    rules.aggregation == "earliest",
                    lambda c: join.outcome(
                        rewards=c.rewards,
                        deferred=c.deferred,
                        activated=c.activated,
                        expired=c.expired,
                        aggregation=rules.aggregation,
                        default_reward=rules.default_reward,
                    ),
                )
                == joins.FINALIZE_BATCH
            ):
                pass  # a backlog (e.g. events that expired while no learner ran)
            if self.serving is not None:
                await self._learn_available(self.serving)
        if time.monotonic() - self._last_snapshot >= rules.export_every.total_seconds():
            await self.snapshot()
        purging = self._purge_task is not None and not self._purge_task.done()
        due = time.monotonic() - self._last_purge >= PURGE_EVERY_S
        if rules.retention_days >= 0 and due and not purging:
            self._last_purge = time.monotonic()
            self._purge_task = asyncio.create_task(self._purge(rules.retention_days))

    async def _purge(self, days: int) -> None:
        """logRetentionDays, beside the learning loop (its batches are short transactions)."""
        try:
            purged = await logs.purge_older_than(self._engine, days)
        except Exception:
            log.exception("retention purge failed; it runs again later")
            return
        if purged:
            log.info("retention: deleted %d events older than %d days", purged, days)

    async def _learn_available(self, model: ServingModel) -> None:
        while True:
            events = await joins.joined_after(self._engine, model.cursor, LEARN_BATCH)
            for n, event in enumerate(events, 1):
                if event["learn"]:
                    try:
                        model.events_learned += _learn(model.policy, event)
                    except RuntimeError:  # VW refused this event: it must not stall the stream
                        log.exception("could not learn joined event %s; skipped", event["seq"])
                model.cursor = event["seq"]
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if len(events) < LEARN_BATCH:
                return

    async def snapshot(self) -> None:
        """Save the serving model with its cursor if its cursor moved since the last snapshot."""
        async with self._lock:
            model = self.serving
            self._last_snapshot = time.monotonic()
            if model is None or model.cursor == model.saved_cursor:
                return
            cursor = model.cursor
            await snapshots.save(
                self._engine,
                snapshots.Snapshot(
                    model.row.id, cursor, model.events_learned, model.policy.to_bytes()
                ),
                self._snapshots_kept,
            )
            model.saved_cursor = cursor


def _learn(policy: Policy, event: dict) -> int:
    """Teach `policy` one joined event; returns 1 if it learned, 0 if the event teaches nothing."""
    taught = lesson(
        learning_mode=event["learning_mode"],
        reward_position=event["reward_position"],
        probability=event["probability"],
        policy_position=event["policy_position"],
        policy_probability=event["policy_probability"],
        reward=event["reward"],
    )
    if taught is None:
        return 0
    policy.learn_from(event["example"], *taught)
    return 1
