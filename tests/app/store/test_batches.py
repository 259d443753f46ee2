"""Rows count only once their batch is resolved, never when it was voided (app.store.writers),
and a writer whose process is gone has its batches resolved by someone else.

The rows are written directly, as a writer would leave them, so each state is exact: a batch
not yet published, published, voided; a writer whose process lives, or died.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from app.process import this_process
from app.store import joins, lease, writers
from app.store.db import async_engine, migrate
from policies.join import outcome

# no server ran on this database, so no learner was elected: the epoch is still 0
NO_LEARNER_YET = lease.Term(epoch=0, lease_s=60.0)

WAIT = timedelta(minutes=10)


@pytest.fixture
def db(database_url: str):
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ("pending", "joined", "rewards", "activations", "voided_batches", "writers"):
            conn.execute(f"DELETE FROM {table}")
        yield conn


def _writer(conn: psycopg.Connection, resolved_n: int, pid: int = 1, start: int = 1) -> int:
    """A writer of this machine with batches resolved through its `resolved_n`th."""
    me = this_process()
    writer_id = conn.execute(
        "INSERT INTO writers (host, boot_id, pid, process_start, started_at, seen_at)"
        " VALUES (%s, %s, %s, %s, now(), now()) RETURNING id",
        (me.host, me.boot_id, pid, start),
    ).fetchone()[0]
    _publish(conn, writer_id, resolved_n)
    return writer_id


def _publish(conn: psycopg.Connection, writer_id: int, resolved_n: int) -> None:
    conn.execute(
        "UPDATE writers SET resolved_through = %s WHERE id = %s",
        (writers.batch_number(writer_id, resolved_n), writer_id),
    )


def _pending(conn: psycopg.Connection, event_id: str, batch: int, age_s: float = 1.0,
             deferred: bool = False) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO pending (event_id, created_at, deferred, batch)"
        " VALUES (%s, now() - make_interval(secs => %s), %s, %s)",
        (event_id, age_s, deferred, batch),
    )


def _reward(conn: psycopg.Connection, event_id: str, value: float, batch: int,
            age_s: float = 0.0) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO rewards (event_id, value, received_at, batch)"
        " VALUES (%s, %s, now() - make_interval(secs => %s), %s)",
        (event_id, value, age_s, batch),
    )


def _finalize(url: str, aggregation: str = "earliest", wait: timedelta = WAIT) -> int:
    async def run() -> int:
        engine = async_engine(url)
        try:
            return await joins.finalize(
                engine,
                NO_LEARNER_YET,
                wait,
                aggregation == "earliest",
                lambda c: outcome(
                    rewards=c.rewards, deferred=c.deferred, activated=c.activated,
                    expired=c.expired, aggregation=aggregation, default_reward=0.0,
                    unresolved=c.unresolved, void=c.void,
                ),
            )  # fmt: skip
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _joined(conn: psycopg.Connection) -> dict[str, tuple[float, bool, str]]:
    rows = conn.execute("SELECT event_id, reward, learn, reason FROM joined").fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_an_event_waits_until_its_decision_and_its_rewards_are_resolved(db, database_url) -> None:
    w = _writer(db, resolved_n=1)
    b = lambda n: writers.batch_number(w, n)  # noqa: E731
    _pending(db, "decided-unresolved", b(2))
    _reward(db, "decided-unresolved", 0.5, b(1))
    _pending(db, "reward-unresolved", b(1))
    _reward(db, "reward-unresolved", 0.25, b(3))
    _pending(db, "resolved", b(1))
    _reward(db, "resolved", 0.75, b(1))
    assert _finalize(database_url) == 1
    assert _joined(db) == {"resolved": (0.75, True, "reward")}
    _publish(db, w, 2)
    assert _finalize(database_url) == 1
    assert _joined(db)["decided-unresolved"] == (0.5, True, "reward")
    _publish(db, w, 3)
    assert _finalize(database_url) == 1
    assert _joined(db)["reward-unresolved"] == (0.25, True, "reward")


def test_an_expired_event_of_an_unresolved_batch_waits_too(db, database_url) -> None:
    w = _writer(db, resolved_n=4)
    _pending(db, "expired", writers.batch_number(w, 5), age_s=700)
    assert _finalize(database_url) == 0
    _publish(db, w, 5)
    assert _finalize(database_url) == 1
    assert _joined(db) == {"expired": (0.0, True, "default")}


def test_a_voided_reward_is_in_no_aggregate(db, database_url) -> None:
    w = _writer(db, resolved_n=9)
    b = lambda n: writers.batch_number(w, n)  # noqa: E731
    db.execute("INSERT INTO voided_batches (batch, voided_at) VALUES (%s, now())", (b(2),))
    _pending(db, "summed", b(1), age_s=700)
    for value, n in ((0.5, 1), (0.25, 2), (0.125, 3)):
        _reward(db, "summed", value, b(n), age_s=650)  # within its window
    _pending(db, "first-voided", b(1))
    _reward(db, "first-voided", 1.0, b(2))
    assert _finalize(database_url, "sum") == 1
    assert _joined(db) == {"summed": (0.625, True, "reward")}
    # earliest: the voided reward is not the first one; with no other, the event waits
    assert _finalize(database_url, "earliest") == 0
    _reward(db, "first-voided", -0.5, b(4))
    assert _finalize(database_url, "earliest") == 1
    assert _joined(db)["first-voided"] == (-0.5, True, "reward")


def test_a_voided_decision_is_final_when_its_wait_closes_and_never_learned(
    db, database_url
) -> None:
    w = _writer(db, resolved_n=9)
    voided = writers.batch_number(w, 3)
    db.execute("INSERT INTO voided_batches (batch, voided_at) VALUES (%s, now())", (voided,))
    _pending(db, "void-rewarded", voided)
    _reward(db, "void-rewarded", 1.0, writers.batch_number(w, 4))
    _pending(db, "void-expired", voided, age_s=700)
    assert _finalize(database_url) == 1  # rewarded but void: waits for a retry, or its end
    assert _joined(db) == {"void-expired": (0.0, False, "void")}
    # a retry answered 201 moves it to its own batch: it counts, with its reward
    db.execute(
        "UPDATE pending SET batch = %s WHERE event_id = 'void-rewarded'",
        (writers.batch_number(w, 5),),
    )
    assert _finalize(database_url) == 1
    assert _joined(db)["void-rewarded"] == (1.0, True, "reward")


def test_a_voided_activation_does_not_activate(db, database_url) -> None:
    w = _writer(db, resolved_n=9)
    voided = writers.batch_number(w, 2)
    db.execute("INSERT INTO voided_batches (batch, voided_at) VALUES (%s, now())", (voided,))
    _pending(db, "deferred", writers.batch_number(w, 1), deferred=True)
    _reward(db, "deferred", 1.0, writers.batch_number(w, 1))
    db.execute(
        "INSERT INTO activations (event_id, received_at, batch) VALUES ('deferred', now(), %s)",
        (voided,),
    )
    assert _finalize(database_url) == 0
    db.execute(
        "INSERT INTO activations (event_id, received_at, batch) VALUES ('deferred', now(), %s)",
        (writers.batch_number(w, 3),),
    )
    assert _finalize(database_url) == 1
    assert _joined(db) == {"deferred": (1.0, True, "reward")}


def _take_over(url: str) -> list[int]:
    async def run() -> list[int]:
        engine = async_engine(url)
        try:
            return await writers.take_over(engine, NO_LEARNER_YET)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_writers_of_a_dead_process_are_taken_over(db, database_url) -> None:
    me = this_process()
    dead = _writer(db, resolved_n=1, pid=me.pid, start=me.start + 1)  # same pid, other start
    living = _writer(db, resolved_n=1, pid=me.pid, start=me.start)  # this very process
    _pending(db, "of-the-dead", writers.batch_number(dead, 2))
    _reward(db, "of-the-dead", 0.5, writers.batch_number(dead, 2))
    _pending(db, "of-the-living", writers.batch_number(living, 2))
    _reward(db, "of-the-living", 0.5, writers.batch_number(living, 2))
    assert _finalize(database_url) == 0
    assert _take_over(database_url) == [dead]
    assert _finalize(database_url) == 1
    assert set(_joined(db)) == {"of-the-dead"}
    row = db.execute("SELECT closed, resolved_through FROM writers WHERE id = %s", (dead,))
    assert row.fetchone() == (True, writers.last_batch_of(dead))


def test_a_writer_whose_session_holds_its_lock_is_not_taken_over(db, database_url) -> None:
    me = this_process()
    dead = _writer(db, resolved_n=1, pid=me.pid, start=me.start + 1)
    with psycopg.connect(database_url, autocommit=True) as session:
        session.execute(writers.LOCK, (dead,))  # its connection still lives
        assert _take_over(database_url) == []
    assert _take_over(database_url) == [dead]


def test_a_writer_of_another_machine_is_taken_over_once_stale(db, database_url) -> None:
    other = db.execute(
        "INSERT INTO writers (host, boot_id, pid, process_start, started_at, seen_at)"
        " VALUES ('elsewhere', 'x', 1, 1, now(), now()) RETURNING id"
    ).fetchone()[0]
    assert _take_over(database_url) == []
    db.execute(
        "UPDATE writers SET seen_at = now() - %s - interval '1 second' WHERE id = %s",
        (writers.ORPHAN_AFTER, other),
    )
    assert _take_over(database_url) == [other]


def test_a_living_process_of_this_machine_is_never_taken_over(db, database_url) -> None:
    """Its writer settles its own batches when it reconnects (it knows which were late)."""
    me = this_process()
    living = _writer(db, resolved_n=1, pid=me.pid, start=me.start)
    db.execute(
        "UPDATE writers SET seen_at = now() - %s - interval '1 minute' WHERE id = %s",
        (writers.ORPHAN_AFTER, living),
    )
    assert _take_over(database_url) == []
