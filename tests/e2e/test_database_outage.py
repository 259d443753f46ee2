"""A database outage: while PostgreSQL is unreachable, rank, reward and activate answer 503
`ServiceUnavailable` (a decision that cannot be logged is not given) and /healthz says the
database is unreachable; when it comes back the service recovers by itself, without a restart,
nothing acknowledged is lost and the learner learns again. Never a 500.

The machine's shared PostgreSQL is left alone: the test runs a PostgreSQL of its own (pgserver's
binaries, run the way pgserver runs them), stops it with `pg_ctl stop -m immediate` in the middle
of concurrent traffic and starts it again on the same socket directory, so the service's URL
stays valid.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import API_KEY, Server, rank_body

pgserver = pytest.importorskip("pgserver")

WORKERS = 4
MAX_ITERATIONS = 1500  # per worker: rank, then reward and activate an acknowledged event
PAUSE = 0.01  # seconds between iterations
REQUEST_TIMEOUT = 20.0  # an answer slower than this is a hang, and a failure
WARMUP = 2.0  # seconds of traffic before the outage
OUTAGE = 5.0  # seconds PostgreSQL stays down
AFTER = 10.0  # seconds of traffic after PostgreSQL is back
RECOVERY = 15.0  # the service must serve ranks and rewards again within this after the restart
SETTLED = 1.0  # after the first successes, in-flight stragglers may still see the outage
LEARN_TIMEOUT = 15.0
SUCCESS = {"rank": 201, "reward": 204, "activate": 204}


class OwnPostgres:
    """A throwaway PostgreSQL this test may stop and start; removed by `destroy`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ds-outage-"))
        self._handle = pgserver.get_server(self.root / "pg", cleanup_mode=None)
        self.pgdata: Path = self._handle.pgdata
        info = self._handle.get_postmaster_info()
        assert info.socket_dir is not None, "expected a unix-socket PostgreSQL"
        self.socket_dir: Path = info.socket_dir
        self.url: str = self._handle.get_uri()
        self._user = self._handle.system_user  # "pgserver" when running as root, else None

    def _pg_ctl(self, *args: str) -> None:
        # pgserver's own helper: `pg_ctl -D <pgdata> …`, as its system user when root.
        pgserver.pg_ctl(list(args), pgdata=self.pgdata, user=self._user, timeout=30)

    def running(self) -> bool:
        try:
            self._pg_ctl("status")
        except subprocess.CalledProcessError:
            return False
        return True

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        # The options pgserver started it with: no TCP, the same socket directory, same log.
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop()
        atexit.unregister(self._handle._cleanup)
        pgserver.PostgresServer._instances.pop(self.pgdata, None)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        yield pg
    finally:
        pg.destroy()


@dataclass(frozen=True)
class Call:
    op: str  # "rank" | "reward" | "activate" | "healthz"
    event_id: str
    start: float
    end: float
    status: int | None  # None: no HTTP answer at all
    body: Any
    failure: str | None = None

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


def _call(client: httpx.Client, op: str, event_id: str, path: str, body: Any = None) -> Call:
    start = time.monotonic()
    try:
        if op == "healthz":
            response = client.get(path)
        elif body is None:
            response = client.post(path)
        else:
            response = client.post(path, json=body)
    except httpx.HTTPError as exc:
        return Call(
            op, event_id, start, time.monotonic(), None, None, f"{type(exc).__name__}: {exc}"
        )
    end = time.monotonic()
    try:
        parsed = response.json() if response.content else None
    except ValueError:
        parsed = response.text
    return Call(op, event_id, start, end, response.status_code, parsed)


class Traffic:
    """Worker threads sending rank, then reward and activate for events answered 201."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, args=(w,), name=f"traffic-{w}", daemon=True)
            for w in range(WORKERS)
        ]

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def _record(self, call: Call) -> Call:
        with self._lock:
            self._calls.append(call)
        return call

    def _work(self, worker: int) -> None:
        acked: list[str] = []
        client = httpx.Client(
            base_url=f"{self._server.url}/personalizer/v1.0",
            headers={"Ocp-Apim-Subscription-Key": API_KEY},
            timeout=REQUEST_TIMEOUT,
        )
        with client:
            for i in range(MAX_ITERATIONS):
                if self.stop.is_set():
                    return
                event_id = f"outage-{worker}-{i}-{uuid.uuid4().hex[:8]}"
                body = rank_body(event_id, context=[{"user": {"worker": worker, "n": i % 5}}])
                if self._record(_call(client, "rank", event_id, "/rank", body)).status == 201:
                    acked.append(event_id)
                if not acked:
                    continue
                target = acked[-1]
                value = {"value": (i % 3) / 2}
                self._record(_call(client, "reward", target, f"/events/{target}/reward", value))
                target = acked[(i * 7) % len(acked)]
                self._record(_call(client, "activate", target, f"/events/{target}/activate"))
                time.sleep(PAUSE)

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)


def _healthz(server: Server) -> Call:
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client:
        return _call(client, "healthz", "", "/healthz")


def _summary(calls: list[Call]) -> str:
    counts = Counter((c.op, c.status, c.code) for c in calls)
    lines = [
        f"  {op} {status} {code or ''}: {n}"
        for (op, status, code), n in sorted(counts.items(), key=str)
    ]
    return "\n".join(lines)


def _rows(url: str, table: str, event_ids: list[str]) -> Counter[str]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            f"SELECT event_id, count(*) FROM {table} WHERE event_id = ANY(%s) GROUP BY event_id",
            (event_ids,),
        ).fetchall()
    return Counter({event_id: n for event_id, n in rows})


def test_database_outage_gives_503_then_recovers_without_losing_anything(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    server = Server(own_postgres.url, tmp_path / "server").start()
    health_down: list[Call] = []
    health_up: list[Call] = []
    try:
        with Traffic(server) as traffic:
            time.sleep(WARMUP)
            pid = _healthz(server).body["pid"]
            assert any(c.status == 201 for c in traffic.calls), _summary(traffic.calls)

            own_postgres.stop()  # returns once PostgreSQL is gone
            down = time.monotonic()
            while time.monotonic() < down + OUTAGE:
                health_down.append(_healthz(server))
                time.sleep(0.25)
            restarting = time.monotonic()
            own_postgres.start()  # returns once PostgreSQL accepts connections
            up = time.monotonic()

            # Recovery: healthz 200, a rank 201 and a reward 204 sent after the restart.
            recovered = None
            while recovered is None and time.monotonic() < up + RECOVERY:
                health_up.append(_healthz(server))
                calls = traffic.calls
                if (
                    health_up[-1].status == 200
                    and any(c.op == "rank" and c.start >= up and c.status == 201 for c in calls)
                    and any(c.op == "reward" and c.start >= up and c.status == 204 for c in calls)
                ):
                    recovered = time.monotonic()
                    break
                time.sleep(0.1)
            if recovered is not None:
                time.sleep(max(0.0, max(up + AFTER, recovered + 5.0) - time.monotonic()))
        alive = all(not t.is_alive() for t in traffic.threads)
        calls = traffic.calls
        process_up = server.process is not None and server.process.poll() is None
        log = server.log()
        context = (
            f"\nstatus counts:\n{_summary(calls)}\n"
            f"outage {down:.1f}–{restarting:.1f}, back at {up:.1f}, recovered at {recovered}\n"
            f"server log (tail):\n{log[-4000:]}"
        )

        # The service itself never went away, never hung, never answered 5xx other than 503.
        assert process_up, f"the service process died{context}"
        assert alive, f"traffic threads hung{context}"
        failures = [c for c in calls if c.status is None]
        assert not failures, f"no answer from the service: {failures[:3]}{context}"
        unexpected = [c for c in calls if c.status not in (SUCCESS[c.op], 503)]
        assert not unexpected, f"unexpected answers: {unexpected[:5]}{context}"
        unavailable = [c for c in calls if c.status == 503]
        assert all(c.code == "ServiceUnavailable" for c in unavailable), (
            f"503 without the ServiceUnavailable body: {unavailable[:3]}{context}"
        )

        # While PostgreSQL was down, nothing was acknowledged, and each call was refused with 503.
        during = [c for c in calls if c.start >= down and c.end <= restarting]
        assert all(c.status == 503 for c in during), (
            f"acknowledged without a database: {[c for c in during if c.status != 503][:5]}"
            f"{context}"
        )
        for op in SUCCESS:
            assert any(c.op == op for c in during), f"no {op} during the outage{context}"
        assert len(health_down) >= 3, context
        for probe in health_down:
            assert probe.status == 503, f"healthz during the outage: {probe}{context}"
            assert probe.body["database"] == "unreachable", f"{probe}{context}"

        # Back by itself, within the bound, and staying back.
        assert recovered is not None, f"no recovery within {RECOVERY} s of the restart{context}"
        assert health_up[-1].status == 200 and health_up[-1].body["database"] == "reachable"
        settled = [c for c in calls if c.start >= recovered + SETTLED]
        assert len(settled) >= 10, f"too little traffic after recovery{context}"
        assert all(c.status == SUCCESS[c.op] for c in settled), (
            f"refused after recovery: {[c for c in settled if c.status != SUCCESS[c.op]][:5]}"
            f"{context}"
        )
        assert _healthz(server).body["pid"] == pid, f"not the process that served before{context}"

        # Acknowledged means durable: every 201 has its decision (and its place in the join
        # queue or the joined stream), every 204 its reward or activation row.
        ranked = [c.event_id for c in calls if c.op == "rank" and c.status == 201]
        decided = _rows(own_postgres.url, "decisions", ranked)
        missing = [e for e in ranked if decided[e] != 1]
        assert not missing, f"{len(missing)} acknowledged decisions missing: {missing[:5]}{context}"
        queued = _rows(own_postgres.url, "pending", ranked) + _rows(
            own_postgres.url, "joined", ranked
        )
        assert all(queued[e] == 1 for e in ranked), "a decision is neither pending nor joined"
        for op, table in (("reward", "rewards"), ("activate", "activations")):
            acked = Counter(c.event_id for c in calls if c.op == op and c.status == 204)
            stored = _rows(own_postgres.url, table, list(acked))
            lost = {e: (n, stored[e]) for e, n in acked.items() if stored[e] < n}
            assert not lost, f"acknowledged {op}s missing (answered, stored): {lost}{context}"

        # The learner recovered too: a new rewarded event is joined and learned.
        before = _healthz(server).body["eventsLearned"]
        event_id = f"outage-learn-{uuid.uuid4()}"
        with server.client() as client:
            assert client.post("/rank", json=rank_body(event_id)).status_code == 201
            assert client.post(f"/events/{event_id}/reward", json={"value": 1}).status_code == 204
        deadline = time.monotonic() + LEARN_TIMEOUT
        while True:
            with psycopg.connect(own_postgres.url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT seq FROM joined WHERE event_id = %s", (event_id,)
                ).fetchone()
            health = _healthz(server).body
            if row is not None and health["position"] >= row[0]:
                break
            assert time.monotonic() < deadline, (
                f"the learner did not learn after recovery: joined {row}, healthz {health}{context}"
            )
            time.sleep(0.1)
        assert health["eventsLearned"] > before, health
    finally:
        server.stop()
