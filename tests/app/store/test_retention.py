"""logRetentionDays: the purge deletes old events with everything logged for them, but never
an event the newest snapshot has not learned yet (recovery must still be able to replay it)."""

from __future__ import annotations

import asyncio
import json

import psycopg

from app import service_config
from app.store import lease, logs
from app.store.configuration import ensure_defaults
from app.store.db import async_engine, migrate
from policies.arguments import DEFAULT_ARGUMENTS

# no server ran on this database, so no learner was elected: the epoch is still 0
NO_LEARNER_YET = lease.Term(epoch=0, lease_s=60.0)


def _decision(conn: psycopg.Connection, event_id: str, days_old: int) -> None:
    conn.execute(
        "INSERT INTO decisions (event_id, created_at, request_hash, context, actions, excluded,"
        " ranking, reward_action, probability, policy_action, policy_probability, example,"
        " reward_position, policy_position, policy_id, policy_name, model_version,"
        " learning_mode, deferred) VALUES (%s, now() - make_interval(days => %s), 'h', %s, %s,"
        " '[]', '[]', 0, 1, 0, 1, '{}', 0, 0, 1, 'default', '1.0', 'Online', false)",
        (event_id, days_old, json.dumps([{"u": 1}]), json.dumps([{"id": "a", "features": []}])),
    )
    conn.execute(
        "INSERT INTO rewards (event_id, value, received_at) VALUES (%s, 1, now())", (event_id,)
    )


def test_purge_keeps_recent_and_unsnapshotted_events(database_url: str) -> None:
    migrate(database_url)

    async def setup_and_purge(days: int) -> int:
        engine = async_engine(database_url)
        try:
            await ensure_defaults(engine, service_config.defaults(), "default", DEFAULT_ARGUMENTS)
            return await logs.purge_older_than(engine, days, NO_LEARNER_YET)
        finally:
            await engine.dispose()

    asyncio.run(setup_and_purge(90))  # creates the champion; nothing to purge yet
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(10):
            _decision(conn, f"old-{i}", days_old=100)
            conn.execute(
                "INSERT INTO joined (seq, event_id, reward, learn, reason, reward_count, joined_at)"
                " VALUES (%s, %s, 1, true, 'reward', 1, now())",
                (i + 1, f"old-{i}"),
            )
        _decision(conn, "recent", days_old=1)
        conn.execute(
            "INSERT INTO joined (seq, event_id, reward, learn, reason, reward_count, joined_at)"
            " VALUES (11, 'recent', 1, true, 'reward', 1, now())"
        )
        # the champion's newest snapshot has learned up to position 6
        policy_id = conn.execute("SELECT id FROM policies WHERE role = 'champion'").fetchone()[0]
        conn.execute(
            "INSERT INTO snapshots (policy_id, cursor, events_learned, model, created_at)"
            " VALUES (%s, 6, 6, '\\x00', now())",
            (policy_id,),
        )

    assert asyncio.run(setup_and_purge(90)) == 6
    with psycopg.connect(database_url, autocommit=True) as conn:
        left = {r[0] for r in conn.execute("SELECT event_id FROM decisions").fetchall()}
        assert left == {f"old-{i}" for i in range(6, 10)} | {"recent"}
        rewards = {r[0] for r in conn.execute("SELECT event_id FROM rewards").fetchall()}
        assert rewards == left
        seqs = [r[0] for r in conn.execute("SELECT seq FROM joined ORDER BY seq").fetchall()]
        assert seqs == [7, 8, 9, 10, 11]
