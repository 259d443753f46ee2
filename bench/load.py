"""Open-loop and closed-loop load over HTTP: latency at a fixed offered rate, and throughput at
saturation.

`python3 -m bench.load --url http://127.0.0.1:8000 --key K [--rate 200] [--duration 10]
[--actions 5] [--concurrency N]`

Drives an already running server with rank bodies (about 20 features per action) and prints one
line of figures. Open loop (the default): request i is sent at t0 + i/rate whatever the earlier
ones are doing, and its latency counts from that scheduled time, so a server (or a client) that
falls behind shows in the percentiles instead of slowing the offered rate down (no coordinated
omission). `--concurrency N` runs the closed loop instead: N workers, each sending its next
request when the last one is answered. The client shares the machine's cores with the server;
bodies are encoded once, before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

RANK_PATH = "/personalizer/v1.0/rank"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
MAX_CONNECTIONS = 256
TIMEOUT_S = 30.0
SEED = 7

Bodies = Sequence[bytes] | Callable[[int], bytes]


@dataclass
class LoadResult:
    offered: float | None  # requests/s asked for (None: closed loop)
    sent: int
    elapsed_s: float  # from the first scheduled send to the last answer
    latencies_ms: list[float]  # of every answered request, sorted
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # transport errors: no HTTP answer
    max_lag_ms: float = 0.0  # how late the client started a request after its scheduled time

    @property
    def achieved(self) -> float:
        """Answers per second."""
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies (ms); NaN without answers."""
        if not self.latencies_ms:
            return math.nan
        rank = max(1, math.ceil(q / 100 * len(self.latencies_ms)))
        return self.latencies_ms[rank - 1]

    @property
    def failed(self) -> int:
        """Transport errors plus answers outside 2xx."""
        return self.errors + sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def line(self) -> str:
        mode = f"open {self.offered:,.0f}/s" if self.offered is not None else "closed"
        statuses = " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items()))
        return (
            f"{mode:<12} achieved {self.achieved:>7,.1f}/s  sent {self.sent:>6}"
            f"  p50 {self.percentile(50):>7.2f}  p95 {self.percentile(95):>7.2f}"
            f"  p99 {self.percentile(99):>7.2f}  max {self.max_ms:>7.2f} ms"
            f"  failed {self.failed}  (statuses {statuses or '-'}, transport errors"
            f" {self.errors}, client lag max {self.max_lag_ms:.1f} ms)"
        )

    @property
    def max_ms(self) -> float:
        return self.latencies_ms[-1] if self.latencies_ms else math.nan


def _body_at(bodies: Bodies) -> Callable[[int], bytes]:
    if callable(bodies):
        return bodies
    return lambda i: bodies[i % len(bodies)]


def _client(url: str, headers: dict[str, str], connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=url,
        headers={"content-type": "application/json", **headers},
        limits=limits,
        timeout=httpx.Timeout(TIMEOUT_S),
    )


async def open_loop(
    url: str,
    bodies: Bodies,
    rate: float,
    duration_s: float,
    headers: dict[str, str],
    path: str = RANK_PATH,
    connections: int = MAX_CONNECTIONS,
) -> LoadResult:
    """POST `path` at `rate` requests/s for `duration_s` s; request i is due at t0 + i/rate and
    its latency runs from then. `bodies`: encoded bodies (cycled) or a function of i."""
    body_at = _body_at(bodies)
    n = int(rate * duration_s)
    result = LoadResult(offered=rate, sent=n, elapsed_s=0.0, latencies_ms=[])
    last_answer = 0.0

    async with _client(url, headers, connections) as client:

        async def send(due: float, body: bytes) -> None:
            nonlocal last_answer
            result.max_lag_ms = max(result.max_lag_ms, (time.perf_counter() - due) * 1000)
            try:
                response = await client.post(path, content=body)
            except httpx.HTTPError:
                result.errors += 1
                return
            done = time.perf_counter()
            last_answer = max(last_answer, done)
            result.statuses[response.status_code] += 1
            result.latencies_ms.append((done - due) * 1000)

        tasks: list[asyncio.Task[None]] = []
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(send(due, body_at(i))))
        await asyncio.gather(*tasks)
    result.elapsed_s = max(last_answer - t0, 0.0)
    result.latencies_ms.sort()
    return result


async def saturate(
    url: str,
    bodies: Bodies,
    concurrency: int,
    duration_s: float,
    headers: dict[str, str],
    path: str = RANK_PATH,
) -> LoadResult:
    """Closed loop: `concurrency` workers POST `path` back to back for `duration_s` s; latency
    runs from each actual send."""
    body_at = _body_at(bodies)
    result = LoadResult(offered=None, sent=0, elapsed_s=0.0, latencies_ms=[])
    counter = iter(range(1 << 62))

    async with _client(url, headers, max(concurrency, 1)) as client:
        t0 = time.perf_counter()
        deadline = t0 + duration_s

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = body_at(next(counter))
                result.sent += 1
                start = time.perf_counter()
                try:
                    response = await client.post(path, content=body)
                except httpx.HTTPError:
                    result.errors += 1
                    continue
                result.statuses[response.status_code] += 1
                result.latencies_ms.append((time.perf_counter() - start) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - t0
    result.latencies_ms.sort()
    return result


def rank_body(rng: random.Random, actions: int, features: int = 20) -> dict[str, Any]:
    """A rank request like bench.http's, with `features` features per action (half one-hot
    strings, half numbers) and no eventId (the server draws one: every request is new)."""
    return {
        "contextFeatures": [
            {"user": {"tier": rng.choice("abcd"), "visits": rng.randint(1, 50)}},
            {"device": rng.choice(["mobile", "desktop"])},
        ],
        "actions": [
            {
                "id": f"item-{a}",
                "features": [
                    {f"c{j}": f"v{rng.randrange(10)}" for j in range(features // 2)}
                    | {f"n{j}": round(rng.random(), 4) for j in range(features - features // 2)}
                ],
            }
            for a in range(actions)
        ],
    }


def rank_bodies(n: int, actions: int, features: int = 20) -> list[bytes]:
    """`n` distinct rank bodies, encoded."""
    rng = random.Random(SEED)
    return [
        json.dumps(rank_body(rng, actions, features), separators=(",", ":")).encode()
        for _ in range(n)
    ]


async def _main(args: argparse.Namespace) -> LoadResult:
    headers = {KEY_HEADER: args.key}
    bodies = rank_bodies(args.bodies, args.actions, args.features)
    if args.concurrency:
        if args.warmup > 0:
            await saturate(args.url, bodies, args.concurrency, args.warmup, headers, args.path)
        return await saturate(args.url, bodies, args.concurrency, args.duration, headers, args.path)
    if args.warmup > 0:
        await open_loop(
            args.url, bodies, args.rate, args.warmup, headers, args.path, args.connections
        )
    return await open_loop(
        args.url, bodies, args.rate, args.duration, headers, args.path, args.connections
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.load", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument("--key", required=True, help="the API key")
    parser.add_argument("--rate", type=float, default=200.0, help="offered requests/s (open)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before, not measured")
    parser.add_argument("--actions", type=int, default=5)
    parser.add_argument("--features", type=int, default=20, help="features per action")
    parser.add_argument("--bodies", type=int, default=1000, help="distinct bodies, cycled")
    parser.add_argument("--concurrency", type=int, default=0, help="closed loop with N workers")
    parser.add_argument("--connections", type=int, default=MAX_CONNECTIONS, help="open loop pool")
    parser.add_argument("--path", default=RANK_PATH)
    args = parser.parse_args()
    cpu = time.process_time()
    result = asyncio.run(_main(args))
    cpu = time.process_time() - cpu
    print(f"{args.url}{args.path}  {result.line()}  client CPU {cpu:.1f} s")


if __name__ == "__main__":
    main()
