"""The learner's lease and fencing, against a real database: taking the lock takes a new epoch;
a write of a learner whose epoch is over commits nothing (finalizing, snapshots, retention,
take-over, evaluation claims); a fenced transaction holds the next epoch back until it ends; no
snapshot goes behind the newest; a learner that finds itself deposed stops before writing; an
event VW refuses is recorded for its policy and counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from app import service_config
from app.loop.learner import Learner
from app.process import this_process
from app.service_config import Rules
from app.serving import Registry
from app.store import evaluations, joins, lease, logs, roles, snapshots, writers
from app.store.configuration import champion, ensure_defaults
from app.store.db import async_engine, migrate
from bench.learner import generate, insert
from policies.arguments import DEFAULT_ARGUMENTS, DEFAULT_POLICY_NAME
from policies.join import outcome

N = 300
RULES = Rules.of(service_config.defaults())


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def url(database_url: str) -> str:
    """N joined events of the champion, none learned."""
    migrate(database_url)

    async def setup() -> int:
        engine = async_engine(database_url)
        try:
            await ensure_defaults(
                engine, service_config.defaults(), DEFAULT_POLICY_NAME, DEFAULT_ARGUMENTS
            )
            return (await champion(engine)).id
        finally:
            await engine.dispose()

    insert(database_url, *generate(N, 4, _run(setup())))
    return database_url


def _epoch(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT epoch FROM learner_lease").fetchone()[0]


def _scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


def _counts(url: str) -> tuple[int, ...]:
    tables = ("joined", "pending", "snapshots", "policy_scores", "writers", "evaluations")
    return tuple(_scalar(url, f"SELECT count(*) FROM {t}") for t in tables)


async def _take_once_free(conn: psycopg.AsyncConnection) -> int | None:
    """`take`, retried for a few seconds: a closed session's backend frees its lock as it exits,
    a moment after the client closed it."""
    for _ in range(100):
        epoch = await lease.take(conn, this_process())
        if epoch is not None:
            return epoch
        await asyncio.sleep(0.05)
    return None


def test_taking_the_lock_takes_a_new_epoch(url: str) -> None:
    async def scenario() -> list[int | None]:
        first = await psycopg.AsyncConnection.connect(url, autocommit=True)
        second = await psycopg.AsyncConnection.connect(url, autocommit=True)
        taken = [await _take_once_free(first), await lease.take(second, this_process())]
        await first.close()  # the lock goes with the session
        taken.append(await _take_once_free(second))
        await second.close()
        return taken

    before = _epoch(url)
    assert _run(scenario()) == [before + 1, None, before + 2]
    assert _epoch(url) == before + 2


def test_a_stale_epoch_writes_nothing(url: str) -> None:
    stale = lease.Term(_epoch(url) - 1, 5.0)
    me = this_process()
    with psycopg.connect(url, autocommit=True) as conn:
        # an expired pending event, a writer of a dead process, a Running evaluation
        conn.execute(
            "INSERT INTO decisions SELECT 'pending-1', now() - interval '1 day', request_hash,"
            " context, actions, excluded, ranking, reward_action, probability, policy_action,"
            " policy_probability, example, reward_position, policy_position, policy_id,"
            " policy_name, model_version, learning_mode, deferred FROM decisions LIMIT 1"
        )
        conn.execute(
            "INSERT INTO pending (event_id, created_at, deferred)"
            " VALUES ('pending-1', now() - interval '1 day', false)"
        )
        conn.execute(
            "INSERT INTO writers (host, boot_id, pid, process_start, started_at, seen_at)"
            " VALUES (%s, %s, 999999999, 1, now(), now())",
            (me.host, me.boot_id),
        )
        conn.execute(
            "INSERT INTO evaluations (id, name, start_time, end_time, created_at,"
            " evaluation_type, status, request, attempts) VALUES ('e', 'e', now(), now(), now(),"
            " 'Manual', 'Running', '{}', 0)"
        )
    before = _counts(url)

    async def writes() -> list[str]:
        engine = async_engine(url)
        policy_id = (await champion(engine)).id
        saved = snapshots.Saved(
            snapshots.Snapshot(policy_id, N, N, b"model"), [(1, 0.5, 0.5, 1.0)], [(2, "r")]
        )
        attempts = {
            "finalize": joins.finalize(
                engine,
                stale,
                timedelta(seconds=5),
                True,
                lambda c: outcome(
                    rewards=c.rewards,
                    deferred=c.deferred,
                    activated=c.activated,
                    expired=c.expired,
                    aggregation="earliest",
                    default_reward=0.0,
                ),
            ),
            "snapshot": snapshots.save(engine, stale, [saved], 3, policy_id),
            "retention": logs.purge_older_than(engine, 0, stale),
            "take over": writers.take_over(engine, stale),
            "claim": evaluations.claim_next(engine, stale),
            "not the learner": snapshots.save(engine, None, [saved], 3, policy_id),
        }
        refused = []
        for name, attempt in attempts.items():
            try:
                await attempt
            except lease.Deposed:
                refused.append(name)
        await engine.dispose()
        return refused

    assert _run(writes()) == [
        "finalize",
        "snapshot",
        "retention",
        "take over",
        "claim",
        "not the learner",
    ]
    assert _counts(url) == before
    assert _scalar(url, "SELECT attempts FROM evaluations WHERE id = 'e'") == 0


def test_a_fenced_transaction_holds_the_next_epoch_back(url: str) -> None:
    """The learner's write that checked its epoch commits before the next epoch exists: a new
    learner's `take` waits for it, and reads what it wrote."""

    async def scenario() -> tuple[float, float, int | None]:
        engine = async_engine(url)
        current = lease.Term(_epoch(url), 5.0)
        taker = await psycopg.AsyncConnection.connect(url, autocommit=True)
        t0 = time.monotonic()
        async with engine.begin() as conn:
            await lease.fence(conn, current)
            taking = asyncio.ensure_future(_take_once_free(taker))
            await asyncio.sleep(0.5)
            assert not taking.done()  # the new epoch waits for this transaction
            committed = time.monotonic() - t0
        epoch = await taking
        taken = time.monotonic() - t0
        async with engine.begin() as conn:  # the old epoch is over now
            with pytest.raises(lease.Deposed):
                await lease.fence(conn, current)
        await taker.close()
        await engine.dispose()
        return committed, taken, epoch

    before = _epoch(url)
    committed, taken, epoch = _run(scenario())
    assert epoch == before + 1
    assert taken >= committed >= 0.5


def test_no_snapshot_goes_behind_the_newest(url: str) -> None:
    async def scenario() -> None:
        engine = async_engine(url)
        term = lease.Term(_epoch(url), 5.0)
        policy_id = (await champion(engine)).id
        ahead = snapshots.Saved(snapshots.Snapshot(policy_id, 50, 50, b"ahead"), [], [])
        behind = snapshots.Saved(snapshots.Snapshot(policy_id, 40, 40, b"behind"), [], [])
        await snapshots.save(engine, term, [ahead], 3, policy_id)
        with pytest.raises(snapshots.SnapshotBehind):
            await snapshots.save(engine, term, [behind], 3, policy_id)
        newest = await snapshots.latest(engine, policy_id)
        assert newest is not None and (newest.cursor, newest.model) == (50, b"ahead")
        await engine.dispose()

    _run(scenario())
    with psycopg.connect(url, autocommit=True) as conn:  # leave no snapshot for the next test
        conn.execute("DELETE FROM snapshots")


def test_a_deposed_learner_stops_before_it_writes(url: str) -> None:
    """Its epoch is over: the learner's next step raises Deposed before any write, its loop
    ends and tells the service."""
    before = _counts(url)

    async def scenario() -> int:
        engine = async_engine(url)
        stale = lease.Term(_epoch(url) - 1, 5.0)
        told = []
        registry = Registry(engine, lambda: RULES)
        learner = Learner(
            engine, lambda: RULES, 3, 0.05, registry, lambda: stale, lambda: told.append(1)
        )
        learner.start()
        for _ in range(100):
            if told:
                break
            await asyncio.sleep(0.05)
        assert not learner.running
        await learner.stop()  # no last snapshot either
        await engine.dispose()
        return len(told)

    assert _run(scenario()) == 1
    assert _counts(url) == before


def test_an_event_vw_refuses_is_recorded_and_counted(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE decisions SET example = '{\"broken' WHERE event_id ="
            " (SELECT event_id FROM joined WHERE seq = 7)"
        )

    async def scenario() -> roles.PolicyInfo:
        engine = async_engine(url)
        term = lease.Term(_epoch(url), 5.0)
        learner = Learner(
            engine, lambda: RULES, 3, 1.0, Registry(engine, lambda: RULES), lambda: term
        )
        await learner.catch_up()
        await learner.snapshot()
        info = next(i for i in await roles.list_policies(engine) if i.role == "champion")
        await engine.dispose()
        return info

    info = _run(scenario())
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT policy_id, seq, reason FROM refused_events").fetchall()
    assert [(policy_id, seq) for policy_id, seq, _ in rows] == [(info.id, 7)]
    assert "JSON" in rows[0][2]
    assert (info.events_refused, info.events_learned, info.cursor) == (1, N - 1, N)
