"""The joiner's candidate query: events that cannot be final yet never crowd out those that can."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from app.store import joins, lease
from app.store.db import async_engine, migrate
from policies.join import outcome

# no server ran on this database, so no learner was elected: the epoch is still 0
NO_LEARNER_YET = lease.Term(epoch=0, lease_s=60.0)


@pytest.fixture(scope="module")
def migrated(database_url: str) -> str:
    migrate(database_url)
    return database_url


@pytest.fixture
def url(migrated: str) -> str:
    """The module's database with nothing pending or joined yet, and `joined_seq` back at 1:
    each test starts from the same state, whichever ran before it."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("TRUNCATE pending, rewards, activations, joined RESTART IDENTITY")
        conn.execute("ALTER SEQUENCE joined_seq RESTART")
    return migrated


def _pending(conn: psycopg.Connection, event_id: str, age_s: float, deferred: bool) -> None:
    conn.execute(
        "INSERT INTO pending (event_id, created_at, deferred)"
        " VALUES (%s, now() - make_interval(secs => %s), %s)",
        (event_id, age_s, deferred),
    )


def _reward(conn: psycopg.Connection, event_id: str, value: float, age_s: float = 0.0) -> None:
    conn.execute(
        "INSERT INTO rewards (event_id, value, received_at)"
        " VALUES (%s, %s, now() - make_interval(secs => %s))",
        (event_id, value, age_s),
    )


def _finalize(
    url: str, wait: timedelta, earliest: bool = True, since_s: float | None = None
) -> int:
    """`joins.finalize`; `since_s`: rewards looked for since that many seconds ago."""

    async def run() -> int:
        engine = async_engine(url)
        try:
            since = None
            if since_s is not None:
                since = await joins.database_now(engine) - timedelta(seconds=since_s)
            return await joins.finalize(
                engine,
                NO_LEARNER_YET,
                wait,
                earliest,
                lambda c: outcome(
                    rewards=c.rewards, deferred=c.deferred, activated=c.activated,
                    expired=c.expired, aggregation="earliest" if earliest else "sum",
                    default_reward=0.0,
                ),
                since,
            )  # fmt: skip
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_deferred_rewarded_unactivated_events_do_not_block_the_queue(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(joins, "FINALIZE_BATCH", 2)
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(5):  # older, rewarded, waiting for an activation that may never come
            _pending(conn, f"deferred-{i}", age_s=60, deferred=True)
            _reward(conn, f"deferred-{i}", 1.0)
        _pending(conn, "plain", age_s=1, deferred=False)
        _reward(conn, "plain", 0.5)
        _pending(conn, "activated", age_s=1, deferred=True)
        _reward(conn, "activated", 0.25)
        conn.execute("INSERT INTO activations (event_id, received_at) VALUES ('activated', now())")
        _pending(conn, "silent", age_s=1, deferred=False)

    assert _finalize(url, timedelta(minutes=10)) == 2
    with psycopg.connect(url, autocommit=True) as conn:
        joined = dict(conn.execute("SELECT event_id, reward FROM joined").fetchall())
        assert joined == {"plain": 0.5, "activated": 0.25}
        still = {r[0] for r in conn.execute("SELECT event_id FROM pending").fetchall()}
        assert still == {f"deferred-{i}" for i in range(5)} | {"silent"}
    # once their wait time has closed (plus the grace), they are final, and not learned
    assert _finalize(url, timedelta(seconds=30)) == 2
    assert _finalize(url, timedelta(seconds=30)) == 2
    assert _finalize(url, timedelta(seconds=30)) == 1
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT learn, reason FROM joined WHERE event_id LIKE 'deferred-%'"
        ).fetchall()
        assert rows == [(False, "not-activated")] * 5
        assert conn.execute("SELECT seq FROM joined ORDER BY seq").fetchall() == [
            (i,) for i in range(1, 8)
        ]


def test_a_step_looks_for_rewards_received_since_its_previous_one(url: str) -> None:
    """With `since`, only rewards (and activations of deferred events) received since then
    make an event final early; one rewarded before is final when its wait time closes, with
    its reward."""
    with psycopg.connect(url, autocommit=True) as conn:
        _pending(conn, "new", age_s=20, deferred=False)
        _reward(conn, "new", 0.5, age_s=1)
        _pending(conn, "old", age_s=20, deferred=False)
        _reward(conn, "old", 0.75, age_s=15)  # a reward an earlier step already looked at
        _pending(conn, "late-activation", age_s=20, deferred=True)
        _reward(conn, "late-activation", 0.25, age_s=15)
        conn.execute(
            "INSERT INTO activations (event_id, received_at)"
            " VALUES ('late-activation', now() - interval '1 second')"
        )
    assert _finalize(url, timedelta(minutes=10), since_s=5) == 2
    with psycopg.connect(url, autocommit=True) as conn:
        assert _joined(conn) == {"new": 0.5, "late-activation": 0.25}
    # a step without `since` (the first after a start) looks at the whole wait time
    assert _finalize(url, timedelta(minutes=10)) == 1
    # and an event that no step saw early is final when its wait time closes, with its reward
    with psycopg.connect(url, autocommit=True) as conn:
        _pending(conn, "unseen", age_s=40, deferred=False)
        _reward(conn, "unseen", 1.0, age_s=35)
    assert _finalize(url, timedelta(minutes=10), since_s=5) == 0
    assert _finalize(url, timedelta(seconds=30), since_s=5) == 1
    with psycopg.connect(url, autocommit=True) as conn:
        assert _joined(conn) == {"new": 0.5, "late-activation": 0.25, "old": 0.75, "unseen": 1.0}


def _joined(conn: psycopg.Connection) -> dict[str, float]:
    return dict(conn.execute("SELECT event_id, reward FROM joined").fetchall())
