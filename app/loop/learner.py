"""The learning loop: join final events, learn them in order, snapshot the model.

Only the elected learner runs it. It serves its champion through this process's
`app.serving.Registry`: the model it learns on is the model it ranks with, so a learned reward
shows in the next rank. Every final event has a position (`joined.seq`); the model
remembers the last position it learned (`cursor`), and a snapshot stores the bytes and the
cursor together, so a restart loads the newest snapshot and learns what follows it.

The learner keeps every active policy: the champion, which serves, and the challengers, which
learn the same stream in shadow. Before a policy learns an Online event it records its
probability of the logged action (progressive validation); those scores are saved in the same
transaction as the policy's snapshot, so they are recorded exactly once too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from app.service_config import Rules
from app.serving import PolicyModel, Registry, newest_model
from app.store import configuration, joins, lease, logs, snapshots, writers
from app.store.db import AsyncEngine, is_disconnect
from policies import join
from policies.arguments import with_epsilon
from policies.ranking import lesson
from policies.vw import Policy

log = logging.getLogger(__name__)

LEARN_BATCH = 500
PURGE_EVERY_S = 600.0  # how often the learner applies logRetentionDays
YIELD_EVERY = 50  # events learned between yields to the event loop (keeps rank latency low)
SCORES_BUFFERED = 100_000  # unsaved scores that bring the next snapshot forward
COALESCE_S = 0.01  # under a stream of rewards, a step woken by a commit waits for commits
COALESCE_MAX_S = 0.05  # to pause this long, but no longer than this
TAKE_OVER_EVERY_S = 1.0  # how often the learner looks for writers whose process is gone


class Learner:
    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Rules],
        snapshots_kept: int,
        join_interval: float,
        registry: Registry,
        term: Callable[[], lease.Term | None],
        on_deposed: Callable[[], None] = lambda: None,
        answered: Callable[[], writers.Local | None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._registry = registry  # the learner serves its champion's model through it
        self._term = term  # this process's learner term (None unless it leads)
        self._on_deposed = on_deposed
        self._answered = answered  # what this process's writer answered for (may be unpublished)
        self._rules = rules
        self._snapshots_kept = snapshots_kept
        self._join_interval = join_interval
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one step, load or snapshot at a time
        self._task: asyncio.Task[None] | None = None
        self._last_snapshot = time.monotonic()
        self._last_purge = time.monotonic() - PURGE_EVERY_S + 60  # first purge after a minute
        self._purge_task: asyncio.Task[None] | None = None
        self._rewards_since: datetime | None = None  # see joins.LOOKBACK
        self._rewards_rules: tuple[str, timedelta] | None = None  # the rules it was taken under
        self._next_take_over = 0.0
        self._joined_last_step = 0  # events the previous step joined
        self.models: dict[int, PolicyModel] = {}  # the learner's active policies, by id

    # -- lifecycle --------------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Load every active policy's newest snapshot, learn every joined event after each one's
        cursor, and serve the champion."""
        async with self._lock:
            self.models = {}
            await self._sync_models()
            model = self._registry.serving
            assert model is not None
            log.info("serving policy %s, model version %s", model.row.name, model.version)

    async def sync(self) -> None:
        """The learner, after a change of policies: load new challengers, drop retired ones,
        serve the champion (a promoted challenger keeps its model), learn what they lack."""
        async with self._lock:
            before = self._registry.serving
            await self._sync_models()
            champion = self._registry.serving
        if champion is not None and (before is None or before.row.id != champion.row.id):
            await self.snapshot(force=True)  # workers load the new champion's model now

    async def _sync_models(self) -> None:
        rows = await configuration.active(self._engine)
        exploration = self._rules().exploration
        models = {}
        for row in rows:
            current = self.models.get(row.id)
            if current is None:
                models[row.id] = await newest_model(self._engine, row, exploration)
                continue
            current.row = row  # its role may have changed
            arguments = with_epsilon(row.arguments, exploration)
            if current.policy.arguments != arguments:  # the exploration changed
                model = current.policy.to_bytes()
                current.policy = await asyncio.to_thread(Policy.from_bytes, arguments, model)
            models[row.id] = current
        self.models = models
        await self._learn_available(list(models.values()))
        self._registry.serve(models[rows[0].id])

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="learner")

    async def stop(self) -> None:
        """Stop learning; a learner that still leads saves a last snapshot."""
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
            # Under a stream of rewards (the previous step joined several events), a step woken
            # by a commit first waits until commits pause (at most COALESCE_MAX_S), so that
            # rewards sent together are joined together; otherwise a reward is joined at once.
            if self._wake.is_set() and self._joined_last_step > 1:
                settle_until = time.monotonic() + COALESCE_MAX_S
                while self._wake.is_set() and time.monotonic() < settle_until:
                    self._wake.clear()
                    await asyncio.sleep(COALESCE_S)
            self._wake.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except lease.Deposed as exc:
                log.warning("stopped learning: %s", exc)
                self._on_deposed()
                return
            except Exception as exc:
                if is_disconnect(exc):
                    log.warning("learner step failed, database unavailable: %s", exc)
                else:
                    log.exception("learner step failed; retrying")
                await asyncio.sleep(min(5.0, self._join_interval * 4))

    async def step(self) -> None:
        rules = self._rules()
        if time.monotonic() >= self._next_take_over:
            # a dead process's writes are resolved, so its events can become final
            self._next_take_over = time.monotonic() + TAKE_OVER_EVERY_S
            await writers.take_over(self._engine, self._term())
        async with self._lock:
            started = await joins.database_now(self._engine)
            # after a change of the join rules, look at the whole wait time once
            rules_key = (rules.aggregation, rules.wait)
            since = self._rewards_since if self._rewards_rules == rules_key else None
            self._joined_last_step = 0
            while True:
                joined = await joins.finalize(
                    self._engine,
                    self._term(),
                    rules.wait,
                    rules.aggregation == "earliest",
                    lambda c: join.outcome(
                        rewards=c.rewards,
                        deferred=c.deferred,
                        activated=c.activated,
                        expired=c.expired,
                        aggregation=rules.aggregation,
                        default_reward=rules.default_reward,
                        unresolved=c.unresolved,
                        void=c.void,
                    ),
                    since,
                    self._answered(),
                )
                self._joined_last_step += joined
                if joined < joins.FINALIZE_BATCH:
                    break  # else a backlog (e.g. events that expired while no learner ran)
            self._rewards_since, self._rewards_rules = started - joins.LOOKBACK, rules_key
            if self.models:
                await self._learn_available(list(self.models.values()))
        buffered = sum(len(m.scores) for m in self.models.values())
        due = time.monotonic() - self._last_snapshot >= rules.export_every.total_seconds()
        if due or buffered >= SCORES_BUFFERED:
            await self.snapshot()
        purging = self._purge_task is not None and not self._purge_task.done()
        due = time.monotonic() - self._last_purge >= PURGE_EVERY_S
        if rules.retention_days >= 0 and due and not purging:
            self._last_purge = time.monotonic()
            self._purge_task = asyncio.create_task(self._purge(rules.retention_days, self._term()))

    async def _purge(self, days: int, term: lease.Term | None) -> None:
        """logRetentionDays, beside the learning loop (its batches are short transactions)."""
        try:
            purged = await logs.purge_older_than(self._engine, days, term)
        except lease.Deposed:
            return
        except Exception:
            log.exception("retention purge failed; it runs again later")
            return
        if purged:
            log.info("retention: deleted %d events older than %d days", purged, days)

    async def _learn_available(self, models: list[PolicyModel]) -> None:
        """Teach each model, in order, the joined events after its cursor."""
        learned = 0
        while models:
            low = min(m.cursor for m in models)
            events = await joins.joined_after(self._engine, low, LEARN_BATCH)
            for event in events:
                for model in models:
                    if event.seq > model.cursor:
                        _learn(model, event)
                        learned += 1
                        if learned % YIELD_EVERY == 0:
                            await asyncio.sleep(0)
            if sum(len(m.scores) for m in models) >= SCORES_BUFFERED:
                await self._save()  # a long catch-up keeps its unsaved scores bounded
            if len(events) < LEARN_BATCH:
                return

    async def snapshot(self, force: bool = False) -> None:
        """Save each model whose cursor moved since its last snapshot (with its scores)."""
        async with self._lock:
            await self._save(force)

    async def _save(self, force: bool = False) -> None:
        """`snapshot` with the lock held; `force` saves the champion even if it did not move.
        Only the learner saves (a deposed one gets lease.Deposed)."""
        self._last_snapshot = time.monotonic()
        term = self._term()
        if term is None:
            return
        models = list(self.models.values())
        champion = next((m for m in models if m.row.role == "champion"), None)
        moved = [m for m in models if m.cursor != m.saved_cursor or (force and m is champion)]
        if not moved or champion is None:
            return
        saved = [
            snapshots.Saved(
                snapshots.Snapshot(m.row.id, m.cursor, m.events_learned, m.policy.to_bytes()),
                m.scores,
                m.refused,
            )
            for m in moved
        ]
        await snapshots.save(self._engine, term, saved, self._snapshots_kept, champion.row.id)
        for model, item in zip(moved, saved, strict=True):
            model.saved_cursor = item.snapshot.cursor
            model.scores = model.scores[len(item.scores) :]
            model.refused = model.refused[len(item.refused) :]


def _learn(model: PolicyModel, event: joins.JoinedEvent) -> None:
    """Teach `model` one joined event (recording its score first when the event is Online)."""
    model.cursor = event.seq
    if not event.learn:
        return
    taught = lesson(
        learning_mode=event.learning_mode,
        reward_position=event.reward_position,
        probability=event.probability,
        policy_position=event.policy_position,
        policy_probability=event.policy_probability,
        reward=event.reward,
    )
    if taught is None:
        return
    try:
        if event.learning_mode == "Online":
            pmf = model.policy.score_and_learn(event.example, *taught)
            model.scores.append((event.seq, pmf[taught[0]], event.probability, event.reward))
        else:
            model.policy.learn_from(event.example, *taught)
    except (RuntimeError, ValueError, IndexError) as exc:  # VW refused it: no stall
        log.warning("policy %s could not learn joined event %s: %s", model.row.id, event.seq, exc)
        model.refused.append((event.seq, str(exc) or type(exc).__name__))
        return
    model.events_learned += 1
