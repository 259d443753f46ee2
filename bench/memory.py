"""Peak memory of a service process after a large log: 1M decisions learned, then more traffic.

The log is made on the database side: the decisions the service logged for a few hundred
real rank calls (5 actions × 20 features, as the load generator sends them) are copied,
under new eventIds, until the log holds N decisions, each joined with a reward (a seeded
third of them 1, the rest 0) so that every one is a final event to learn. The service is then
started on that log: as the learner it catches up on all N events (parse, score, learn, save
scores and snapshots) before it answers, and then serves `--http` more ranks and rewards over
HTTP. The figure is each process's peak resident set (VmHWM).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import servers

SEED_RANKS = 500
DECISION_COLUMNS = (
    "request_hash, context, actions, excluded, ranking, reward_action, probability,"
    " policy_action, policy_probability, example, reward_position, policy_position, policy_id,"
    " policy_name, model_version, learning_mode, deferred"
)


def grow_log(database_url: str, decisions: int) -> float:
    """Copy the logged decisions until there are `decisions`, every one joined; seconds."""
    t = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        seeds = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
        missing = decisions - seeds
        conn.execute(
            f"""
            INSERT INTO decisions (event_id, created_at, {DECISION_COLUMNS})
            SELECT 'mem-' || g, now() - interval '1 day' + g * interval '1 millisecond',
                   {DECISION_COLUMNS}
            FROM generate_series(1, %s) AS g
            JOIN (SELECT row_number() OVER (ORDER BY event_id) - 1 AS n, * FROM decisions) s
              ON s.n = g %% %s
            """,
            (missing, seeds),
        )
        conn.execute("DELETE FROM pending")
        conn.execute(
            """
            INSERT INTO joined (seq, event_id, reward, learn, reason, reward_count, joined_at)
            SELECT nextval('joined_seq'), event_id, r, true, 'reward', 1, created_at
            FROM (SELECT event_id, created_at,
                         CASE WHEN hashtext(event_id) % 3 = 0 THEN 1.0 ELSE 0.0 END AS r
                  FROM decisions
                  WHERE event_id NOT IN (SELECT event_id FROM joined)
                  ORDER BY created_at, event_id) d
            """
        )
        conn.execute("VACUUM ANALYZE decisions, joined")
    return time.perf_counter() - t


def measure(database_url: str, decisions: int, http_calls: int, work: Path) -> dict[str, Any]:
    """Start the service on a fresh, migrated-by-it database at `database_url`; the figures."""
    service = servers.start_service(database_url, 1, work / "memory-data", work / "memory-1.log")
    try:
        servers.run_load(service.url, "--bodies", str(SEED_RANKS), "--actions", "5", "--once",
              "--event-prefix", "seed")  # fmt: skip
    finally:
        service.stop()
    grow_s = grow_log(database_url, decisions)
    t = time.perf_counter()
    service = servers.start_service(database_url, 1, work / "memory-data", work / "memory-2.log")
    try:
        catch_up_s = time.perf_counter() - t
        health = httpx.get(service.url + "/healthz", timeout=10).json()
        after_catch_up = {str(pid): servers.rss_mb(pid) for pid in service.pids}
        ranks = servers.run_load(service.url, "--bodies", str(http_calls), "--actions", "5", "--once",
                      "--event-prefix", "mem-http")  # fmt: skip
        rewards = servers.run_load(service.url, "--bodies", str(http_calls), "--once", "--rewards",
                        "--event-prefix", "mem-http")  # fmt: skip
        after_http = {str(pid): servers.rss_mb(pid) for pid in service.pids}
    finally:
        service.stop()
    peak = max(f["peak_rss_mb"] for f in after_http.values())
    return {
        "decisions_logged": decisions + http_calls,
        "events_learned_at_start": health["eventsLearned"],
        "log_grow_s": round(grow_s, 1),
        "start_with_catch_up_s": round(catch_up_s, 1),
        "http_ranks": ranks["answered"],
        "http_rewards": rewards["answered"],
        "http_failed": ranks["failed"] + rewards["failed"],
        "after_catch_up": after_catch_up,
        "after_http": after_http,
        "peak_rss_mb": round(peak, 1),
    }
