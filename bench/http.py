"""Rank and reward over HTTP: throughput, latency and group commit, beside the in-process decision.

`python3 -m bench.http [--requests N] [--actions K] [--database-url URL]`

Starts `decision-service serve` (one process) on a fresh database, then, for 1 and 16 concurrent
clients (threads with keep-alive httpx clients, on the same 2-core machine as the server):
N rank calls, then N reward calls for them. Prints calls/s, p50 and p99 latency, and how many
rows each commit carried (distinct transaction ids of the rows written: group commit). Beside it,
the same rank bodies decided in-process by `policies.ranking.decide` (feature cleaning, VW
predict and the seeded draw, no HTTP and no database), and the ratio HTTP / in-process.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.database import DEFAULT_URL, fresh_database, postgres_server
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.features import clean_features, parse_actions
from policies.ranking import decide
from policies.vw import Policy

KEY = "bench-key"
SEED = 7
CONCURRENCY = (1, 16)


def bodies(n: int, k: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    return [
        {
            "contextFeatures": [
                {"user": {"tier": rng.choice("abcd"), "visits": rng.randint(1, 50)}},
                {"device": rng.choice(["mobile", "desktop"])},
            ],
            "actions": [
                {"id": f"item-{a}", "features": [{"topic": f"t{a % 7}", "length": a / k}]}
                for a in range(k)
            ],
            "eventId": f"bench-{uuid.uuid4()}",
        }
        for _ in range(n)
    ]


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = 18000 + random.randrange(1000)
    env = {**os.environ, "DATABASE_URL": url, "DS_API_KEY": KEY, "DS_ADMIN_KEY": KEY + "-admin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir",
         str(data_dir), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def run(base: str, calls: list[tuple[str, dict[str, Any]]], concurrency: int) -> dict[str, float]:
    """Send `calls` (path, body) over `concurrency` threads; seconds and latencies."""
    chunks = [calls[i::concurrency] for i in range(concurrency)]
    headers = {"Ocp-Apim-Subscription-Key": KEY}

    def worker(chunk: list[tuple[str, dict[str, Any]]]) -> list[float]:
        latencies = []
        with httpx.Client(base_url=f"{base}/personalizer/v1.0", headers=headers) as client:
            for path, body in chunk:
                t = time.perf_counter()
                status = client.post(path, json=body).status_code
                latencies.append(time.perf_counter() - t)
                assert status in (201, 204), status
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [x for chunk in pool.map(worker, chunks) for x in chunk]
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rate": len(calls) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def rows_per_commit(url: str, table: str, event_ids: list[str]) -> float:
    with psycopg.connect(url) as conn:
        rows, transactions = conn.execute(
            f"SELECT count(*), count(DISTINCT xmin::text) FROM {table} WHERE event_id = ANY(%s)",
            (event_ids,),
        ).fetchone()
    return rows / transactions


def in_process_rate(payloads: list[dict[str, Any]]) -> float:
    policy = Policy(with_epsilon(DEFAULT_ARGUMENTS, 0.2))
    start = time.perf_counter()
    for body in payloads:
        context = clean_features(body["contextFeatures"], "context")
        actions = parse_actions(body["actions"])
        decide(policy, context, actions, set(), body["eventId"], "Online")
    return len(payloads) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.http", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--actions", type=int, default=5)
    parser.add_argument(
        "--database-url", default=os.environ.get("DS_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    with (
        postgres_server(args.database_url) as server,
        fresh_database(server) as url,
        tempfile.TemporaryDirectory(prefix="ds-bench-http-") as tmp,
    ):
        process, base = start_server(url, Path(tmp))
        try:
            run(base, [("/rank", b) for b in bodies(200, args.actions)], 4)  # warm up
            local = in_process_rate(bodies(args.requests, args.actions))
            print(f"in-process decide(): {local:,.0f} decisions/s (no HTTP, no database)")
            print(
                f"\n{'clients':>7} {'call':<7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
                f" {'rows/commit':>12} {'HTTP/in-process':>16}"
            )
            for concurrency in CONCURRENCY:
                payloads = bodies(args.requests, args.actions)
                ids = [b["eventId"] for b in payloads]
                ranked = run(base, [("/rank", b) for b in payloads], concurrency)
                per_commit = rows_per_commit(url, "decisions", ids)
                print(
                    f"{concurrency:>7} {'rank':<7} {ranked['rate']:>9,.0f} {ranked['p50']:>8.2f}"
                    f" {ranked['p99']:>8.2f} {per_commit:>12.1f} {ranked['rate'] / local:>16.2f}"
                )
                rewards = [(f"/events/{i}/reward", {"value": 1.0}) for i in ids]
                rewarded = run(base, rewards, concurrency)
                per_commit = rows_per_commit(url, "rewards", ids)
                print(
                    f"{concurrency:>7} {'reward':<7} {rewarded['rate']:>9,.0f}"
                    f" {rewarded['p50']:>8.2f} {rewarded['p99']:>8.2f} {per_commit:>12.1f}"
                )
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
