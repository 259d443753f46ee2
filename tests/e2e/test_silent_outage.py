"""A silent database outage: the network to PostgreSQL stops carrying bytes, but nothing closes.

Unlike `test_database_outage.py`, where PostgreSQL goes away and the service's connections are
refused or reset at once, here every TCP connection stays open and simply goes quiet, as behind a
frozen proxy or a network partition: no FIN, no RST, no error, nothing ever answers. The service
must not hang: rank, reward and activate answer 503 `ServiceUnavailable` within about
`DS_DB_TIMEOUT`, never 500; /healthz answers 503 within a few seconds; when the network carries
bytes again the service recovers by itself (same process), and everything it acknowledged with
201 or 204 is in the database.

The silence is made by a TCP proxy inside the test, between the service and the machine's
PostgreSQL. `freeze()` stops it reading and writing on every connection, without closing any
socket; it still accepts new connections (and opens their upstream TCP connection) but forwards
none of their bytes. `thaw()` resumes forwarding on every connection. The bytes sent during the
freeze are *delivered* after the thaw, in order: they wait in the kernel's socket buffers, as
they wait in TCP's retransmission queue during a partition shorter than the TCP user timeout.
Dropping them instead would cut holes in the middle of a byte stream, which TCP never does (a
real connection is either delivered in full or aborted). Note that the service's TCP peer is the
proxy, whose kernel keeps acknowledging data and keepalive probes: the libpq keepalives and
`tcp_user_timeout` cannot notice this silence, only the service's own timeouts can.

The silence lasts FREEZE seconds, or longer until every call sent during it has ended (each is
cut off by the client at REQUEST_TIMEOUT), so every answer checked was given while silent.

The proxy needs PostgreSQL over TCP: with the embedded unix-socket server the test is skipped.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import API_KEY, Server, rank_body
from tests.proxy import SilenceableProxy, proxy, server_behind

__all__ = ["proxy"]  # the fixture

DB_TIMEOUT = 2.0  # DS_DB_TIMEOUT given to the service
ANSWER_BOUND = DB_TIMEOUT + 3.0  # a rank/reward/activate during the silence answers within this
HEALTH_BOUND = 10.0  # a /healthz during the silence answers within this
REQUEST_TIMEOUT = 20.0  # an answer slower than this is a hang, and a failure
FREEZE = 8.0  # seconds the network stays silent (at least)
SEND_WINDOW = 5.0  # calls are started during the first seconds of the silence only
RECOVERY = 30.0  # after the thaw, ranks and rewards succeed again within this
WARMUP_EVENTS = 5
WARM_POOL = 6  # concurrent /healthz probes before the silence, to fill the connection pool
AFTER_EVENTS = 5  # successful rank+reward+activate rounds required after the recovery
SUCCESS = {"rank": 201, "reward": 204, "activate": 204, "healthz": 200}


@dataclass(frozen=True)
class Call:
    op: str  # "rank" | "reward" | "activate" | "healthz"
    event_id: str
    start: float
    end: float
    status: int | None  # None: no HTTP answer at all (a hang past REQUEST_TIMEOUT)
    body: Any
    failure: str | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    def __str__(self) -> str:
        what = self.status if self.failure is None else self.failure
        body = self.code or (self.body if self.op == "healthz" else "")
        return f"{self.op} {self.event_id[-12:]} → {what} {body} in {self.seconds:.2f} s"


class Client:
    """Sends the calls and keeps a record of each (thread-safe)."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.calls: list[Call] = []

    def _call(self, op: str, event_id: str = "") -> Call:
        paths = {
            "rank": ("/personalizer/v1.0/rank", rank_body(event_id)),
            "reward": (f"/personalizer/v1.0/events/{event_id}/reward", {"value": 0.5}),
            "activate": (f"/personalizer/v1.0/events/{event_id}/activate", None),
            "healthz": ("/healthz", None),
        }
        path, body = paths[op]
        headers = {"Ocp-Apim-Subscription-Key": API_KEY}
        start = time.monotonic()
        try:
            with httpx.Client(
                base_url=self._server.url, headers=headers, timeout=REQUEST_TIMEOUT
            ) as http:
                if op == "healthz":
                    response = http.get(path)
                else:
                    response = http.post(path, json=body) if body else http.post(path)
        except httpx.HTTPError as exc:
            call = Call(op, event_id, start, time.monotonic(), None, None, repr(exc))
        else:
            try:
                parsed = response.json() if response.content else None
            except ValueError:
                parsed = response.text
            call = Call(op, event_id, start, time.monotonic(), response.status_code, parsed)
        with self._lock:
            self.calls.append(call)
        return call

    def rank(self, event_id: str) -> Call:
        return self._call("rank", event_id)

    def reward(self, event_id: str) -> Call:
        return self._call("reward", event_id)

    def activate(self, event_id: str) -> Call:
        return self._call("activate", event_id)

    def healthz(self) -> Call:
        return self._call("healthz")


def _new_event(tag: str) -> str:
    return f"silent-{tag}-{uuid.uuid4().hex[:12]}"


def _rows(url: str, table: str, event_ids: list[str]) -> Counter[str]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            f"SELECT event_id, count(*) FROM {table} WHERE event_id = ANY(%s) GROUP BY event_id",
            (event_ids,),
        ).fetchall()
    return Counter({event_id: n for event_id, n in rows})


class HealthzHangs(AssertionError):
    """/healthz did not answer within HEALTH_BOUND during the silence."""


def test_silent_network_gives_503_in_time_then_recovers(
    proxy: SilenceableProxy, database_url: str, tmp_path: Path
) -> None:
    server = server_behind(proxy, database_url, tmp_path / "server", DB_TIMEOUT)
    client = Client(server)
    frozen_at = thawed_at = recovered_at = None
    during: list[Call] = []
    try:
        # Before: the service works through the proxy.
        acked: list[str] = []
        for _ in range(WARMUP_EVENTS):
            event_id = _new_event("before")
            assert client.rank(event_id).status == 201, client.calls[-1]
            assert client.reward(event_id).status == 204, client.calls[-1]
            acked.append(event_id)
        # A busy service has idle connections in its pool: concurrent probes leave some there.
        for _ in range(3):
            probes = [threading.Thread(target=client.healthz) for _ in range(WARM_POOL)]
            for probe in probes:
                probe.start()
            for probe in probes:
                probe.join(timeout=REQUEST_TIMEOUT + 5)
        health = client.healthz()
        assert all(c.status == SUCCESS[c.op] for c in client.calls), client.calls
        pid = health.body["pid"]
        connections = proxy.connections
        assert proxy.forwarded > 0 and connections > 0

        # The silence: calls from threads, each started in the first SEND_WINDOW seconds.
        proxy.freeze()
        frozen_at = time.monotonic()
        forwarded_before = proxy.forwarded

        def keep_calling(op: str) -> None:
            for i in range(100):
                if time.monotonic() >= frozen_at + SEND_WINDOW:
                    return
                if op == "rank":
                    client.rank(_new_event("during"))
                elif op == "healthz":
                    client.healthz()
                else:
                    getattr(client, op)(acked[i % len(acked)])
                time.sleep(0.2)

        workers = [
            threading.Thread(target=keep_calling, args=(op,), name=f"silent-{op}", daemon=True)
            for op in ("rank", "reward", "activate", "healthz")
        ]
        for worker in workers:
            worker.start()
        for worker in workers:  # each call ends within REQUEST_TIMEOUT: this is bounded
            worker.join(timeout=SEND_WINDOW + REQUEST_TIMEOUT + 5)
        time.sleep(max(0.0, frozen_at + FREEZE - time.monotonic()))
        hung_threads = [w.name for w in workers if w.is_alive()]
        during = [c for c in client.calls if c.start >= frozen_at]
        assert proxy.forwarded == forwarded_before and proxy.forwarded_frozen == 0
        proxy.thaw()
        thawed_at = time.monotonic()

        # After: ranks and rewards (and /healthz) succeed again, by themselves.
        recovered_at = None
        while recovered_at is None and time.monotonic() < thawed_at + RECOVERY:
            event_id = _new_event("after")
            ranked = client.rank(event_id)
            rewarded = client.reward(event_id) if ranked.status == 201 else None
            health = client.healthz()
            if (
                ranked.status == 201
                and rewarded
                and rewarded.status == 204
                and health.status == 200
            ):
                recovered_at = time.monotonic()
            else:
                time.sleep(0.2)
        settled: list[Call] = []
        if recovered_at is not None:
            for _ in range(AFTER_EVENTS):
                event_id = _new_event("settled")
                settled.append(client.rank(event_id))
                settled.append(client.reward(event_id))
                settled.append(client.activate(event_id))
            settled.append(client.healthz())

        calls = list(client.calls)
        process_up = server.process is not None and server.process.poll() is None
        log = server.log()
        recovery = "never" if recovered_at is None else f"{recovered_at - thawed_at:.1f} s"
        context = (
            f"\nfrozen for {thawed_at - frozen_at:.1f} s; proxy: {connections} connections open "
            f"before the freeze, {proxy.accepted} accepted in all ({proxy.accepted_frozen} while "
            f"frozen), errors {proxy.errors[:3]}\n"
            "calls during the silence (start relative to the freeze):\n"
            + "\n".join(f"  +{c.start - frozen_at:5.2f} s {c}" for c in during)
            + f"\nrecovered after the thaw: {recovery}\nserver log (tail):\n{log[-4000:]}"
        )
        print(context)  # shown with -s, and on failure

        # The process lived through it, and nothing hung.
        assert process_up, f"the service process died{context}"
        assert not hung_threads, f"calls still hanging: {hung_threads}{context}"
        for op in ("rank", "reward", "activate", "healthz"):
            assert any(c.op == op for c in during), f"no {op} during the silence{context}"

        # During the silence: refused with 503 ServiceUnavailable, in time; never 500, never hung.
        assert all(c.end <= thawed_at for c in during), context
        probes = [c for c in during if c.op == "healthz"]
        for call in during:
            if call.op == "healthz":
                continue  # checked last, below
            assert call.status is not None, f"no answer (hang): {call}{context}"
            assert call.status == 503, f"not a 503 during the silence: {call}{context}"
            assert call.code == "ServiceUnavailable", f"{call}{context}"
            assert call.seconds <= ANSWER_BOUND, f"answered too late: {call}{context}"
        for call in probes:
            if call.status is not None:
                assert call.status == 503, f"/healthz during the silence: {call}{context}"
                assert call.body["database"] == "unreachable", f"{call}{context}"

        # Back by itself, within the bound, the same process, and staying back.
        assert recovered_at is not None, f"no recovery within {RECOVERY:g} s of the thaw{context}"
        bad = [c for c in settled if c.status != SUCCESS[c.op]]
        assert not bad, f"refused after the recovery: {[str(c) for c in bad]}{context}"
        assert settled[-1].body["pid"] == pid, f"not the process that served before{context}"
        unexpected = [
            c
            for c in calls
            if c.status not in (SUCCESS[c.op], 503) and not (c in probes and c.status is None)
        ]
        assert not unexpected, f"unexpected answers: {[str(c) for c in unexpected]}{context}"
        assert "unhandled error" not in log, f"an unhandled error was logged{context}"

        # Acknowledged means durable: checked on the real database, not through the proxy.
        ranked_ids = [c.event_id for c in calls if c.op == "rank" and c.status == 201]
        decided = _rows(database_url, "decisions", ranked_ids)
        missing = [e for e in ranked_ids if decided[e] != 1]
        assert not missing, f"acknowledged decisions missing: {missing}{context}"
        for op, table in (("reward", "rewards"), ("activate", "activations")):
            acknowledged = Counter(c.event_id for c in calls if c.op == op and c.status == 204)
            stored = _rows(database_url, table, list(acknowledged))
            lost = {e: (n, stored[e]) for e, n in acknowledged.items() if stored[e] < n}
            assert not lost, f"acknowledged {op}s missing (answered, stored): {lost}{context}"

        # Last: /healthz must answer within HEALTH_BOUND.
        slow = [c for c in probes if c.status is None or c.seconds > HEALTH_BOUND]
        if slow:
            raise HealthzHangs(f"/healthz did not answer in {HEALTH_BOUND:g} s: {slow[0]}{context}")
    finally:
        proxy.thaw()  # let the service shut down cleanly
        server.stop()
