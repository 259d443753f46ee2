"""bench.load against a tiny in-process HTTP/1.1 keep-alive server on the same event loop.

The server answers `201 Created` after `delay_s`; the request's path picks another behaviour:
`/hang` is never answered, `/slow` is answered after 3 s, `/drop` closes the connection without an
answer, `/status/N` answers N. Timings are asserted loosely (a busy 2-core machine); counts,
orderings and lower bounds that follow from the schedule carry the tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import pytest

from bench import load
from bench.load import KEY_HEADER, RANK_PATH, LoadResult

HOST = "127.0.0.1"
TIMEOUT_S = 15.0  # a load that hangs fails instead


@dataclass
class Seen:
    """One request as the server parsed it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    method, path, version = lines[0].split(" ")
    assert version == "HTTP/1.1"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name and name == name.strip() and name.lower() not in headers
        headers[name.lower()] = value.strip()
    return method, path, headers


class Server:
    """HTTP/1.1 keep-alive server on 127.0.0.1, port chosen by the system."""

    def __init__(self, delay_s: float = 0.0, close: bool = False) -> None:
        self.delay_s = delay_s
        self.close = close  # close the connection after each answer
        self.requests: list[Seen] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        self.url = f"http://{HOST}:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(0.02)  # the client sees its connections closed

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, path, headers = parse_head(head)
                body = await reader.readexactly(int(headers["content-length"]))
                self.requests.append(Seen(method, path, headers, body))
                if path == "/drop":
                    return
                if path == "/hang":
                    await asyncio.Future()
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                await asyncio.sleep(3.0 if path == "/slow" else self.delay_s)
                self.in_flight -= 1
                status = int(path.removeprefix("/status/")) if path.startswith("/status/") else 201
                text = b"created" if status == 201 else b"status %d" % status
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, b"Created" if status == 201 else b"Other", len(text), text)
                )
                await writer.drain()
                if self.close:
                    return
        finally:
            writer.close()
            self._tasks.discard(task)


def drive(
    server: Server, run_load: Callable[[str], Awaitable[LoadResult]]
) -> tuple[LoadResult, float]:
    """Start `server`, run the load against its URL on the same (uvloop) loop through
    `load.run` (at most TIMEOUT_S); the result and the load's wall time in seconds."""
    took: list[float] = []

    async def main() -> LoadResult:
        await server.start()
        try:
            start = time.perf_counter()
            result = await asyncio.wait_for(run_load(server.url), TIMEOUT_S)
            took.append(time.perf_counter() - start)
            return result
        finally:
            await server.stop()

    result = load.run(main())
    return result, took[0]


def request(url: str, path: str = "/ok", body: bytes = b"{}") -> bytes:
    _, _, host = load._split(url)
    return load.encode_request(host, path, body, {KEY_HEADER: "k"})


def test_open_loop_fast_server() -> None:
    server = Server()

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = [request(url, body=b'{"i":%d}' % i) for i in range(25)]
        return load.open_loop(url, requests, rate=200, duration_s=0.5, connections=32)

    result, took = drive(server, run_load)
    assert result.sent == 100 and len(result.latencies_ms) == 100
    assert result.statuses == Counter({201: 100})
    assert result.failed == 0 and result.errors == 0 and result.unanswered == 0
    # request 99 is due 0.495 s after the first: no more than 202/s can be achieved
    assert 100 <= result.achieved <= 203, result.line()
    assert result.percentile(50) < 100, result.line()
    assert result.latencies_ms == sorted(result.latencies_ms) and result.latencies_ms[0] >= 0
    assert took < 5
    # the 25 requests cycled, each sent 4 times, over reused keep-alive connections
    assert Counter(json.loads(r.body)["i"] for r in server.requests) == dict.fromkeys(range(25), 4)
    assert 1 <= result.connections == server.connections <= 32
    assert result.client_cpu_s > 0
    summary = result.summary()
    assert summary["mode"] == "open" and summary["offered_per_s"] == 200
    assert summary["sent"] == summary["answered"] == 100 and summary["p99_ms"] is not None


def test_open_loop_counts_latency_from_the_due_time() -> None:
    """One connection, 20 ms per request, 100 requests/s offered: request i (due at 10·i ms)
    cannot be answered before 20·(i+1) ms, so its latency is at least 20 + 10·i ms. Measured
    from the send instead, every latency would be about 20 ms (coordinated omission)."""
    server = Server(delay_s=0.02)

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = [request(url, body=b'{"i":%d}' % i) for i in range(30)]
        return load.open_loop(url, requests, rate=100, duration_s=0.3, connections=1, grace_s=10)

    result, took = drive(server, run_load)
    assert result.sent == 30 and result.statuses == Counter({201: 30}) and result.failed == 0
    assert result.connections == server.connections == 1 and server.max_in_flight == 1
    # sent in due order, each once
    assert [json.loads(r.body)["i"] for r in server.requests] == list(range(30))
    # at most k latencies are below 20 + 10·k ms, so the k-th smallest is at least that
    for k, latency in enumerate(result.latencies_ms):
        assert latency >= 0.8 * (20 + 10 * k) - 2, (k, latency, result.line())
    assert result.percentile(99) > 200 and result.percentile(50) > 100, result.line()
    assert result.percentile(99) > 10 * result.percentile(1)
    assert took < 10  # it returns when everything is answered, not after the grace


@pytest.mark.parametrize("path", ["/hang", "/slow"])
def test_open_loop_grace_counts_unanswered(path: str) -> None:
    """Every 10th request is never answered (or answered after 3 s): after the grace they are
    unanswered, count as failed and as infinitely late."""
    server = Server()
    duration, grace = 0.3, 0.4

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = [request(url, path if i == 0 else "/ok") for i in range(10)]
        return load.open_loop(url, requests, 100, duration, connections=16, grace_s=grace)

    result, took = drive(server, run_load)
    assert result.sent == 30 and len(server.requests) == 30
    assert result.unanswered == 3 and result.errors == 0
    assert result.statuses == Counter({201: 27}) and len(result.latencies_ms) == 27
    assert result.failed == 3
    # 30 in all, 3 infinitely late: nearest rank 27 is answered, rank 28 is not
    assert math.isfinite(result.percentile(90)) and result.percentile(91) == math.inf
    assert result.percentile(99) == math.inf
    summary = result.summary()
    assert summary["p99_ms"] is None and summary["p95_ms"] is None
    assert summary["p50_ms"] is not None and summary["unanswered"] == 3
    json.dumps(summary, allow_nan=False)
    assert "unanswered 3" in result.line()
    # it waits for the grace, then gives up (cold start at 50 ms, last due at 340 ms)
    assert duration + grace - 0.1 <= took <= duration + grace + 1.5


def test_open_loop_counts_statuses_outside_2xx() -> None:
    server = Server()

    def run_load(url: str) -> Awaitable[LoadResult]:
        paths = ["/ok", "/status/503", "/status/404", "/ok"]
        requests = [request(url, p) for p in paths]
        return load.open_loop(url, requests, rate=100, duration_s=0.2, connections=8, grace_s=5)

    result, _ = drive(server, run_load)
    assert result.sent == 20 and len(result.latencies_ms) == 20
    assert result.statuses == Counter({201: 10, 503: 5, 404: 5})
    assert result.failed == 10 and result.errors == 0 and result.unanswered == 0
    assert result.summary()["statuses"] == {"201": 10, "404": 5, "503": 5}


@pytest.mark.parametrize("close", ["drop", "after_answer"])
def test_open_loop_server_closing_connections_does_not_hang(close: str) -> None:
    """A server that closes its connections (`drop`: without answering) costs transport errors
    or unanswered requests, and the run ends with its requests, long before the grace."""
    server = Server(close=close == "after_answer")

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = [request(url, "/drop" if close == "drop" else "/ok")]
        return load.open_loop(url, requests, rate=100, duration_s=0.3, connections=4, grace_s=5)

    result, took = drive(server, run_load)
    assert took < 2.5, result.line()
    assert result.sent == 30
    answered = result.statuses[201]
    assert answered + result.errors + result.unanswered == 30, result.line()
    assert result.failed == 30 - answered
    assert result.connections == server.connections >= 1
    if close == "drop":
        assert answered == 0 and not result.statuses
        # each request that reached the server cost a transport error
        assert result.errors == len(server.requests) >= 1
    else:
        assert answered >= 1
        assert not set(result.statuses) - {201}


def test_open_loop_replaces_connections_the_server_closed() -> None:
    server = Server(close=True)  # like a server that serves one request per connection

    def run_load(url: str) -> Awaitable[LoadResult]:
        return load.open_loop(url, [request(url)], rate=50, duration_s=0.4, connections=2)

    result, _ = drive(server, run_load)
    assert result.sent == 20
    assert result.unanswered == 0, result.line()  # fails: 18 unanswered
    assert result.statuses == Counter({201: 20}), result.line()


def test_closed_loop_server_dropping_connections() -> None:
    server = Server()

    def run_load(url: str) -> Awaitable[LoadResult]:
        return load.closed_loop(url, [request(url, "/drop")], concurrency=2, duration_s=0.3)

    result, took = drive(server, run_load)
    assert took < 2.5
    assert result.sent == result.errors == len(server.requests) >= 2
    assert result.connections == server.connections == result.sent
    assert not result.statuses and not result.latencies_ms and result.failed == result.errors


def test_closed_loop_once_sends_each_request_once() -> None:
    server = Server(delay_s=0.005)

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = [request(url, body=b'{"i":%d}' % i) for i in range(30)]
        # `once` sends them all whatever the duration
        return load.closed_loop(url, requests, concurrency=4, duration_s=0.001, once=True)

    result, _ = drive(server, run_load)
    assert result.sent == 30 and result.statuses == Counter({201: 30}) and result.failed == 0
    assert sorted(json.loads(r.body)["i"] for r in server.requests) == list(range(30))
    assert result.connections == server.connections == 4 and server.max_in_flight <= 4
    assert result.offered is None and result.summary()["mode"] == "closed"
    assert result.line().startswith("closed")


def test_closed_loop_stops_near_its_duration() -> None:
    server = Server(delay_s=0.01)
    duration = 0.5

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = [request(url, body=b'{"i":%d}' % i) for i in range(7)]
        return load.closed_loop(url, requests, concurrency=2, duration_s=duration)

    result, took = drive(server, run_load)
    assert duration <= took <= duration + 0.5
    assert duration <= result.elapsed_s <= took
    # two connections back to back, at least 10 ms a request
    assert 10 <= result.sent <= 2 * (duration / 0.01 + 1)
    assert len(server.requests) == result.sent == result.statuses[201] == len(result.latencies_ms)
    assert result.failed == 0
    assert result.connections == server.connections == 2 and server.max_in_flight == 2
    # cycled in order over the 7 requests; latency runs from each send
    assert Counter(json.loads(r.body)["i"] for r in server.requests) == Counter(
        i % 7 for i in range(result.sent)
    )
    assert result.latencies_ms[0] >= 9 and result.percentile(50) < 100


def h11_request(raw: bytes) -> tuple[h11.Request, bytes]:
    """Parse `raw` as one whole HTTP/1.1 request, strictly."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    head = conn.next_event()
    assert isinstance(head, h11.Request)
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    assert conn.next_event() is h11.NEED_DATA  # nothing after the request
    return head, body


def test_encode_request() -> None:
    body = b'{"a":"\xc3\xa9"}'
    raw = load.encode_request("h:8000", "/p?x=1", body, {KEY_HEADER: "secret", "X-B": "2"})
    head, got = h11_request(raw)
    headers = {k.decode(): v.decode() for k, v in head.headers}
    assert head.method == b"POST" and head.target == b"/p?x=1" and head.http_version == b"1.1"
    assert headers == {
        "host": "h:8000",
        "content-type": "application/json",
        "ocp-apim-subscription-key": "secret",
        "x-b": "2",
        "content-length": str(len(body)),
    }
    assert got == body
    assert headers["content-length"] == "10"  # bytes, not characters


def test_rank_requests() -> None:
    url = "http://127.0.0.1:8000"
    with_ids = load.rank_requests(url, "secret", 3, actions=2, features=6, event_prefix="ev")
    assert with_ids == load.rank_requests(url, "secret", 3, 2, 6, "ev")  # seeded
    bodies = []
    for i, raw in enumerate(with_ids):
        head, body = h11_request(raw)
        headers = {k.decode(): v.decode() for k, v in head.headers}
        assert head.target == RANK_PATH.encode() and headers["host"] == "127.0.0.1:8000"
        assert headers["ocp-apim-subscription-key"] == "secret"
        assert headers["content-length"] == str(len(body))
        parsed = json.loads(body)
        assert parsed["eventId"] == f"ev-{i}"
        assert [a["id"] for a in parsed["actions"]] == ["item-0", "item-1"]
        assert all(len(a["features"][0]) == 6 for a in parsed["actions"])
        bodies.append(body)
    assert len(set(bodies)) == 3
    without = [json.loads(h11_request(raw)[1]) for raw in load.rank_requests(url, "k", 3, 2)]
    assert all("eventId" not in b for b in without)


def test_reward_requests_reach_the_server() -> None:
    server = Server()

    def run_load(url: str) -> Awaitable[LoadResult]:
        requests = load.reward_requests(url, "secret", 5, "run1")
        return load.closed_loop(url, requests, concurrency=2, duration_s=0, once=True)

    result, _ = drive(server, run_load)
    assert result.statuses == Counter({201: 5})
    paths = sorted(r.path for r in server.requests)
    assert paths == [f"/personalizer/v1.0/events/run1-{i}/reward" for i in range(5)]
    for seen in server.requests:
        assert seen.method == "POST" and seen.headers["ocp-apim-subscription-key"] == "secret"
        assert seen.headers["host"] == server.url.removeprefix("http://")
        assert seen.headers["content-length"] == str(len(seen.body))
        assert json.loads(seen.body) == {"value": 1.0}


def test_percentile_nearest_rank() -> None:
    result = LoadResult(
        offered=10, sent=10, elapsed_s=2.0, latencies_ms=[float(x) for x in range(1, 11)]
    )
    assert [result.percentile(q) for q in (0, 10, 11, 50, 90, 91, 95, 99, 100)] == [
        1, 1, 2, 5, 9, 10, 10, 10, 10,
    ]  # fmt: skip
    assert result.achieved == 5.0 and result.max_ms == 10 and result.failed == 0
    result.unanswered = 2  # 12 in all, the last two infinitely late
    assert result.percentile(50) == 6 and result.percentile(83) == 10
    assert result.percentile(84) == math.inf and result.percentile(99) == math.inf
    result.errors, result.statuses = 1, Counter({201: 7, 500: 2, 302: 1})
    assert result.failed == 1 + 2 + 2 + 1
    summary = result.summary()
    assert summary["p50_ms"] == 6 and summary["p99_ms"] is None and summary["max_ms"] == 10
    empty = LoadResult(offered=None, sent=0, elapsed_s=0.0, latencies_ms=[])
    assert math.isnan(empty.percentile(50)) and empty.achieved == 0
    json.dumps(empty.summary(), allow_nan=False)
    assert empty.line().startswith("closed")


def test_percentile_rank_is_exact() -> None:
    result = LoadResult(offered=None, sent=1000, elapsed_s=1.0, latencies_ms=list(range(1, 1001)))
    assert result.percentile(99.9) == 999
