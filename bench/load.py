"""Open-loop and closed-loop HTTP/1.1 load: latency at a fixed offered rate, and throughput at
saturation.

`python3 -m bench.load --url http://127.0.0.1:8000 --key K [--rate 200] [--duration 10]
[--actions 5] [--concurrency N] [--json]`

Drives an already running server with rank bodies (about 20 features per action) and prints one
line of figures (`--json`: the figures as one JSON object). Open loop (the default): request i is
due at t0 + i/rate whatever the earlier ones are doing, and its latency counts from that due
time, so a server (or a client) that falls behind shows in the percentiles instead of slowing
the offered rate down (no coordinated omission, as in wrk2). A request goes out on an idle
keep-alive connection; when none is idle a new one is opened, up to `--connections`, and beyond
that requests wait in line (their wait counts). `--concurrency N` runs the closed loop instead:
N connections, each sending its next request when the last one is answered.

The client is a small asyncio protocol on uvloop when it is installed: requests are encoded
once before the clock starts and a response is parsed only as far as its status line and
Content-Length, so the client's CPU per request (reported) stays a small share of the server's
on a machine whose cores they share.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RANK_PATH = "/personalizer/v1.0/rank"
REWARD_PATH = "/personalizer/v1.0/events/{}/reward"
ACTIVATE_PATH = "/personalizer/v1.0/events/{}/activate"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
MAX_CONNECTIONS = 256
TIMEOUT_S = 30.0
TIMER_RESOLUTION_S = 0.001
SEED = 7


@dataclass
class LoadResult:
    offered: float | None  # requests/s asked for (None: closed loop)
    sent: int
    elapsed_s: float  # from the first due time to the last answer
    latencies_ms: list[float]  # of every answered request, sorted
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # transport errors and timeouts: no HTTP answer
    max_lag_ms: float = 0.0  # open loop: how late the client's scheduler took a due request
    connections: int = 0  # connections opened
    client_cpu_s: float = 0.0
    unanswered: int = 0  # still waiting (or never sent) when the run's grace time ran out

    @property
    def achieved(self) -> float:
        """Answers per second."""
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies (ms), an unanswered request counting as
        infinitely late; NaN without requests."""
        total = len(self.latencies_ms) + self.unanswered
        if not total:
            return math.nan
        rank = max(1, math.ceil(round(q * total / 100, 9)))  # exact: 99.9 % of 1,000 is 999
        return self.latencies_ms[rank - 1] if rank <= len(self.latencies_ms) else math.inf

    @property
    def failed(self) -> int:
        """Transport errors, unanswered requests, and answers outside 2xx."""
        bad = sum(n for s, n in self.statuses.items() if not 200 <= s < 300)
        return self.errors + self.unanswered + bad

    @property
    def max_ms(self) -> float:
        return self.latencies_ms[-1] if self.latencies_ms else math.nan

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-ready (latencies in ms)."""
        return {
            "mode": "open" if self.offered is not None else "closed",
            "offered_per_s": self.offered,
            "sent": self.sent,
            "answered": len(self.latencies_ms),
            "achieved_per_s": round(self.achieved, 1),
            "p50_ms": _round(self.percentile(50)),
            "p95_ms": _round(self.percentile(95)),
            "p99_ms": _round(self.percentile(99)),
            "max_ms": _round(self.max_ms),
            "failed": self.failed,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "transport_errors": self.errors,
            "unanswered": self.unanswered,
            "client_lag_max_ms": round(self.max_lag_ms, 2),
            "connections": self.connections,
            "client_cpu_s": round(self.client_cpu_s, 2),
        }

    def line(self) -> str:
        mode = f"open {self.offered:,.0f}/s" if self.offered is not None else "closed"
        statuses = " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items()))
        return (
            f"{mode:<12} achieved {self.achieved:>7,.1f}/s  sent {self.sent:>6}"
            f"  p50 {self.percentile(50):>7.2f}  p95 {self.percentile(95):>7.2f}"
            f"  p99 {self.percentile(99):>7.2f}  max {self.max_ms:>7.2f} ms"
            f"  failed {self.failed}  (statuses {statuses or '-'}, transport errors"
            f" {self.errors}, unanswered {self.unanswered}, client lag max {self.max_lag_ms:.1f} ms,"
            f" {self.connections} connections, client CPU {self.client_cpu_s:.1f} s)"
        )


def _round(value: float) -> float | None:
    """JSON has no NaN or infinity: None (the summary's `unanswered` says why)."""
    return round(value, 2) if math.isfinite(value) else None


def encode_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 keep-alive POST, byte for byte."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.waiter: asyncio.Future[int] | None = None
        self.on_lost: Callable[[_Connection], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._buffer = bytearray()
        self._needed = -1  # bytes of the whole response once its head is parsed
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def request(self, raw: bytes) -> asyncio.Future[int]:
        """Send `raw`; the future gets the response's status code, or TimeoutError after
        TIMEOUT_S (a timer, cheaper than a wait_for task per request)."""
        assert self.transport is not None and self.waiter is None
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self._timer = loop.call_later(TIMEOUT_S, self._time_out)
        self.transport.write(raw)
        return self.waiter

    def _time_out(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError(f"no answer within {TIMEOUT_S:g} s"))
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._needed < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).split(b"\r\n")
            self._status = int(head[0].split(b" ", 2)[1])
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self._needed = end + 4 + length
        if len(self._buffer) >= self._needed:
            del self._buffer[: self._needed]
            self._needed = -1
            waiter, self.waiter = self.waiter, None
            if self._timer is not None:
                self._timer.cancel()
            if waiter is not None and not waiter.done():
                waiter.set_result(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("closed by the server"))
        if self.on_lost is not None:
            self.on_lost(self)

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Connection, host, port)
    return conn


def _split(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"only http:// URLs: {url}")
    port = parts.port or 80
    return parts.hostname, port, f"{parts.hostname}:{port}"


async def open_loop(
    url: str,
    requests: Sequence[bytes],
    rate: float,
    duration_s: float,
    connections: int,
    grace_s: float = TIMEOUT_S,
) -> LoadResult:
    """Send `requests` (encoded, cycled) at `rate`/s for `duration_s` s; request i is due at
    t0 + i/rate and its latency runs from then. What is not answered `grace_s` after the last
    due time is counted as unanswered (an overloaded server's backlog ends the run)."""
    host, port, _ = _split(url)
    n = max(1, int(rate * duration_s))
    result = LoadResult(offered=rate, sent=n, elapsed_s=0.0, latencies_ms=[])
    idle: collections.deque[_Connection] = collections.deque()
    line: collections.deque[tuple[float, bytes]] = collections.deque()  # due, not yet sent
    alive: set[_Connection] = set()  # open connections, idle or busy
    opening = 0
    last_answer = 0.0
    settled = 0  # requests answered or failed
    all_settled = asyncio.Event()
    openers: set[asyncio.Task[None]] = set()

    # Requests are sent and their answers recorded by callbacks, with no task per request:
    # the client's CPU per request is what decides how high a rate it can offer honestly.
    def send(conn: _Connection, due: float, raw: bytes) -> None:
        start = min(due, time.perf_counter())  # a request sent a moment early counts from then
        conn.request(raw).add_done_callback(lambda answer: answered(conn, start, answer))

    def answered(conn: _Connection, start: float, answer: asyncio.Future[int]) -> None:
        nonlocal last_answer, settled
        if all_settled.is_set():  # the run is over: what is still in flight was unanswered
            return
        settled += 1
        if answer.cancelled() or answer.exception() is not None:
            result.errors += 1
            if conn.transport is not None:
                conn.transport.close()
        else:
            done = time.perf_counter()
            last_answer = max(last_answer, done)
            result.statuses[answer.result()] += 1
            result.latencies_ms.append((done - start) * 1000)
        if settled == n:
            all_settled.set()
        if not conn.usable:
            open_another()  # the line must not wait for a connection that is gone
        elif line:
            send(conn, *line.popleft())
        else:
            idle.append(conn)

    def open_another() -> None:
        """Open a connection for the line, unless `connections` are open or opening."""
        nonlocal opening
        if line and len(alive) + opening < connections:
            opening += 1
            task = asyncio.ensure_future(open_one())
            openers.add(task)
            task.add_done_callback(openers.discard)

    async def open_one() -> None:
        nonlocal opening, settled
        try:
            conn = await _connect(host, port)
        except OSError:
            if line:  # the request this connection was for fails
                line.popleft()
                result.errors += 1
                settled += 1
                if settled == n:
                    all_settled.set()
            return
        finally:
            opening -= 1
        result.connections += 1
        alive.add(conn)
        conn.on_lost = alive.discard
        if line:
            send(conn, *line.popleft())
        else:
            idle.append(conn)

    # The event loop's timers have a resolution of 1 ms: shorter sleeps would spin. So every
    # request due within the next millisecond goes out now; its latency counts from its due
    # time, or from when it was sent if that was earlier.
    t0 = time.perf_counter() + 0.05
    i = 0
    while i < n:
        now = time.perf_counter()
        while i < n and t0 + i / rate <= now + TIMER_RESOLUTION_S:
            due, raw = t0 + i / rate, requests[i % len(requests)]
            i += 1
            result.max_lag_ms = max(result.max_lag_ms, (now - due) * 1000)
            while idle and not idle[0].usable:
                idle.popleft()
            if idle:
                send(idle.popleft(), due, raw)
                continue
            line.append((due, raw))
            open_another()
        if i < n:
            wait = t0 + i / rate - time.perf_counter() - TIMER_RESOLUTION_S
            await asyncio.sleep(max(TIMER_RESOLUTION_S, wait))
    end = t0 + duration_s + grace_s
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_settled.wait(), max(0.0, end - time.perf_counter()))
    result.unanswered = n - settled
    all_settled.set()
    for task in list(openers):
        task.cancel()
    await asyncio.gather(*openers, return_exceptions=True)
    for conn in list(alive):
        conn.on_lost = None
        if conn.transport is not None:
            conn.transport.close()
    result.elapsed_s = max(last_answer - t0, 0.0)
    result.latencies_ms.sort()
    return result


async def closed_loop(
    url: str,
    requests: Sequence[bytes],
    concurrency: int,
    duration_s: float,
    once: bool = False,
) -> LoadResult:
    """`concurrency` connections send back to back for `duration_s` s (`once`: until each of
    `requests` was sent once); latency runs from each actual send."""
    host, port, _ = _split(url)
    result = LoadResult(offered=None, sent=0, elapsed_s=0.0, latencies_ms=[])
    counter = iter(range(len(requests) if once else 1 << 62))
    t0 = time.perf_counter()
    deadline = math.inf if once else t0 + duration_s

    async def worker() -> None:
        conn: _Connection | None = None
        for i in counter:
            if time.perf_counter() >= deadline:
                break
            if conn is None or not conn.usable:
                try:
                    conn = await _connect(host, port)
                except OSError:
                    result.errors += 1
                    await asyncio.sleep(0.01)
                    continue
                result.connections += 1
            raw = requests[i % len(requests)]
            result.sent += 1
            start = time.perf_counter()
            try:
                status = await conn.request(raw)
            except (OSError, TimeoutError):
                result.errors += 1
                if conn.transport is not None:
                    conn.transport.close()
                continue
            result.statuses[status] += 1
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - t0
    result.latencies_ms.sort()
    return result


def rank_body(
    rng: random.Random, actions: int, features: int = 20, event_id: str | None = None
) -> dict[str, Any]:
    """A rank request with `features` features per action (half one-hot strings, half numbers)
    and, by default, no eventId (the server draws one: every request is new)."""
    body: dict[str, Any] = {
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
    if event_id is not None:
        body["eventId"] = event_id
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def event_id(prefix: str, i: int) -> str:
    return f"{prefix}-{i}"


def rank_bodies(
    n: int, actions: int, features: int = 20, event_prefix: str | None = None
) -> list[bytes]:
    """`n` distinct rank bodies, encoded; with `event_prefix`, body i has eventId prefix-i."""
    rng = random.Random(SEED)
    return [
        encode(rank_body(rng, actions, features, event_prefix and event_id(event_prefix, i)))
        for i in range(n)
    ]


def rank_requests(
    url: str,
    key: str,
    n: int,
    actions: int,
    features: int = 20,
    event_prefix: str | None = None,
    path: str = RANK_PATH,
) -> list[bytes]:
    """`n` distinct rank requests, encoded whole."""
    _, _, host = _split(url)
    headers = {KEY_HEADER: key}
    bodies = rank_bodies(n, actions, features, event_prefix)
    return [encode_request(host, path, b, headers) for b in bodies]


def reward_requests(url: str, key: str, n: int, event_prefix: str) -> list[bytes]:
    """Rewards (value 1) for the events prefix-0 … prefix-(n−1)."""
    _, _, host = _split(url)
    body = encode({"value": 1.0})
    return [
        encode_request(host, REWARD_PATH.format(event_id(event_prefix, i)), body, {KEY_HEADER: key})
        for i in range(n)
    ]


def activation_requests(url: str, key: str, n: int, event_prefix: str) -> list[bytes]:
    """Activations (no body) of the events prefix-0 … prefix-(n−1)."""
    _, _, host = _split(url)
    path = ACTIVATE_PATH
    return [
        encode_request(host, path.format(event_id(event_prefix, i)), b"", {KEY_HEADER: key})
        for i in range(n)
    ]


def refused_requests(url: str, key: str, n: int, actions: int, features: int = 20) -> list[bytes]:
    """Rank bodies the service refuses with 400 (an empty eventId), read to their end first."""
    _, _, host = _split(url)
    rng = random.Random(SEED)
    bodies = [encode(rank_body(rng, actions, features, event_id="")) for _ in range(n)]
    return [encode_request(host, RANK_PATH, b, {KEY_HEADER: key}) for b in bodies]


def run(coroutine: Any) -> LoadResult:
    """Run a load coroutine on uvloop when it is installed; the result carries the client's
    CPU seconds."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the service
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    cpu = time.process_time()
    result: LoadResult = runner(coroutine)
    result.client_cpu_s = time.process_time() - cpu
    return result


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
    parser.add_argument("--event-prefix", help="rank bodies carry eventId PREFIX-i")
    parser.add_argument(
        "--rewards", action="store_true", help="send rewards for PREFIX-i instead of ranks"
    )
    parser.add_argument(
        "--activations", action="store_true", help="send activations of PREFIX-i instead of ranks"
    )
    parser.add_argument(
        "--refused", action="store_true", help="send rank bodies refused with 400 (empty eventId)"
    )
    parser.add_argument(
        "--once", action="store_true", help="closed loop: send each of the bodies once, then stop"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=TIMEOUT_S,
        help="open loop: seconds to wait for answers after the last due time",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if (args.rewards or args.activations) and not args.event_prefix:
        parser.error("--rewards and --activations need --event-prefix")
    if args.rewards:
        requests = reward_requests(args.url, args.key, args.bodies, args.event_prefix)
    elif args.activations:
        requests = activation_requests(args.url, args.key, args.bodies, args.event_prefix)
    elif args.refused:
        requests = refused_requests(args.url, args.key, args.bodies, args.actions, args.features)
    else:
        requests = rank_requests(
            args.url, args.key, args.bodies, args.actions, args.features, args.event_prefix
        )
    if args.once:
        args.concurrency = args.concurrency or 16
        args.warmup = 0

    def load(seconds: float) -> Any:
        if args.concurrency:
            return closed_loop(args.url, requests, args.concurrency, seconds, args.once)
        return open_loop(args.url, requests, args.rate, seconds, args.connections, args.grace)

    if args.warmup > 0:
        run(load(args.warmup))
    result = run(load(args.duration))
    if args.json:
        print(json.dumps(result.summary()))
    else:
        kind = "rewards" if args.rewards else "activations" if args.activations else "ranks"
        print(f"{args.url}  {kind}  {result.line()}")


if __name__ == "__main__":
    main()
