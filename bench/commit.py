"""The database's lone durable commit: the floor under a rank's latency.

`probe(url, n)` writes `n` decision-shaped rows one after another, each in its own transaction
(one prepared `INSERT` in autocommit mode: one round trip, one commit, the server's own
`synchronous_commit`), into a scratch copy of `decisions` in the same database the service
uses, and reports the latency percentiles in ms. The row is what the service logs for a rank
of the 5-action benchmark body (`app.api.rank.rank_body` decides it with the default policy),
so its size and its JSON columns are a decision's. The scratch table is dropped afterwards.
"""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from app.api.rank import rank_body
from bench import load
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.vw import Policy

TABLE = "bench_lone_commit"


def decision_row(actions: int = 5) -> dict[str, Any]:
    """The columns the service logs for one rank of the benchmark body."""
    body = load.encode(load.rank_body(random.Random(load.SEED), actions))
    ranked = rank_body(body, Policy(with_epsilon(DEFAULT_ARGUMENTS, 0.2)), "Online")
    req, decision = ranked.request, ranked.decision
    return {
        "request_hash": ranked.digest,
        "context": Jsonb(req.context),
        "actions": Jsonb([{"id": a.id, "features": a.features} for a in req.actions]),
        "excluded": Jsonb(req.excluded),
        "ranking": Jsonb(ranked.ranking),
        "reward_action": decision.reward_action,
        "probability": decision.probability,
        "policy_action": decision.policy_action,
        "policy_probability": decision.policy_probability,
        "example": decision.example,
        "reward_position": decision.reward_position,
        "policy_position": decision.policy_position,
        "policy_id": 1,
        "policy_name": "default",
        "model_version": "1.0",
        "learning_mode": "Online",
        "deferred": False,
    }


def probe(url: str, n: int = 2000, actions: int = 5) -> dict[str, Any]:
    """`n` lone INSERT + COMMIT round trips of a decision-shaped row; latency figures in ms."""
    row = decision_row(actions)
    columns = ", ".join(["event_id", "created_at", *row])
    values = ", ".join(["%s", "now()", *(["%s"] * len(row))])
    insert = f"INSERT INTO {TABLE} ({columns}) VALUES ({values})"
    latencies: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (LIKE decisions INCLUDING ALL)")
        try:
            params = list(row.values())
            for i in range(n + 50):  # the first 50 warm the connection and the plan
                start = time.perf_counter()
                conn.execute(insert, [f"lone-{i}", *params], prepare=True)
                if i >= 50:
                    latencies.append((time.perf_counter() - start) * 1000)
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    result = load.LoadResult(offered=None, sent=n, elapsed_s=1.0, latencies_ms=sorted(latencies))
    return {
        "commits": n,
        **{f"p{q}_ms": round(result.percentile(q), 3) for q in (50, 95, 99)},
        "max_ms": round(result.max_ms, 3),
    }
