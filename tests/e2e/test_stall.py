"""A 503 is never learned: a stalled database path under concurrent ranks and rewards.

The network between the service and PostgreSQL stops carrying bytes (`SilenceableProxy`: no
byte forwarded either way, nothing closed) for STALL seconds, longer than DS_DB_TIMEOUT, while
client threads send ranks with their own eventIds and, for each rank answered 201, two rewards
with distinct values, under `sum` aggregation and a reward wait time longer than the stall.
The proxy then resumes and delivers everything it held, so batches the service sent during the
stall commit after their calls were answered 503. After each stall, within the events' wait
time, the clients retry every reward answered 503 (same value) and half of the ranks answered
503 (same body; half of those whose batch committed late, half of those never written), then
reward the retried events. The stall is repeated (up to MAX_STALLS times) until at least two
ranks and one reward committed after their 503. Once every event is final and learned:

- an eventId whose last rank answer was 503 has no `joined` row with `learn` true, and no
  policy (the champion and a challenger) has a score for it;
- every event's `joined.reward` is the sum of its rewards answered 204 (within its wait time,
  as the service received them), exactly: a reward answered 503 is in no sum (and a retried
  one is counted once);
- every 201 has its decision row, every 204 its reward row;
- each retried rank was answered 201 and is learned exactly once (one `joined` row, learned,
  one score per policy);
- the stall did what it is for: calls were answered 503 and at least one batch committed after
  its calls were answered 503 (it is in `voided_batches`).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.conftest import ADMIN_KEY, API_KEY, Server, rank_body, wait_until
from tests.proxy import SilenceableProxy, proxy, server_behind

__all__ = ["proxy"]  # the fixture

DB_TIMEOUT = 1.0
STALL = 3.0  # seconds without a byte forwarded: longer than DB_TIMEOUT
WAIT_TIME = "PT10S"  # the reward wait time: longer than the stall
CLIENTS = 6
BEFORE = 1.5  # seconds of traffic before the stall
AFTER = 1.0  # seconds of traffic after each stall
MAX_STALLS = 6
REQUEST_TIMEOUT = 30.0
CHALLENGER = "--cb_explore_adf --epsilon 0.2 -l 0.1 --cb_type ips -q ::"


@dataclass
class Log:
    """What the clients sent and how each call was answered (shared by the threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last_rank: dict[str, int] = field(default_factory=dict)  # eventId → status of its last rank
    acked: list[str] = field(default_factory=list)  # eventIds answered 201, in that order
    bodies: dict[str, dict] = field(default_factory=dict)
    rewards: list[tuple[str, float, int]] = field(default_factory=list)  # eventId, value, status
    other: list[str] = field(default_factory=list)  # answers neither 2xx nor 503

    def rank(self, client: httpx.Client, event_id: str, body: dict) -> int:
        status = _post(client, "/rank", body)
        with self.lock:
            self.last_rank[event_id] = status
            self.bodies[event_id] = body
            if status == 201:
                self.acked.append(event_id)
            if status not in (201, 503):
                self.other.append(f"rank {event_id}: {status}")
        return status

    def reward(self, client: httpx.Client, event_id: str, value: float) -> int:
        status = _post(client, f"/events/{event_id}/reward", {"value": value})
        with self.lock:
            self.rewards.append((event_id, value, status))
            if status not in (204, 503):
                self.other.append(f"reward {event_id}: {status}")
        return status


def _post(client: httpx.Client, path: str, body: dict) -> int:
    response = client.post(path, json=body)
    if response.status_code == 503:
        assert response.json()["error"]["code"] == "ServiceUnavailable", response.text
    return response.status_code


def _client(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/personalizer/v1.0",
        headers={"Ocp-Apim-Subscription-Key": API_KEY},
        timeout=REQUEST_TIMEOUT,
    )


def _value(rng: random.Random) -> float:
    return round(rng.uniform(-1.0, 1.0), 9)  # distinct, with no rounding in a sum of two


def _traffic(
    server: Server, log: Log, worker: int, stop: threading.Event, pause: threading.Event
) -> None:
    rng = random.Random(worker)
    with _client(server) as client:
        i = 0
        while not stop.is_set():
            if pause.is_set():
                time.sleep(0.01)
                continue
            i += 1
            event_id = f"stall-{worker}-{i}-{uuid.uuid4().hex[:6]}"
            body = rank_body(event_id, context=[{"user": {"w": worker, "n": i % 4}}])
            if log.rank(client, event_id, body) == 201:
                for _ in range(2):
                    log.reward(client, event_id, _value(rng))
            time.sleep(0.005)


def _burst(server: Server, log: Log, kind: str, stall: int) -> None:
    """CLIENTS calls of one kind at once (ranks of new events, or rewards of events answered
    201), so that the batch the stall holds is likely to hold several of them."""
    barrier = threading.Barrier(CLIENTS)
    with log.lock:
        rewardable = log.acked[-CLIENTS:]  # the newest: their wait time is still open

    def one(n: int) -> None:
        with _client(server) as client:
            barrier.wait()
            if kind == "rank":
                event_id = f"burst-{stall}-{n}-{uuid.uuid4().hex[:6]}"
                log.rank(client, event_id, rank_body(event_id))
            else:
                log.reward(client, rewardable[n], _value(random.Random(stall * 100 + n)))

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT + 5)


def _unretried_rewards(log: Log) -> list[tuple[str, float]]:
    """Rewards answered 503 whose value was not sent again since."""
    with log.lock:
        answered = Counter((e, v) for e, v, status in log.rewards if status == 204)
        refused = Counter((e, v) for e, v, status in log.rewards if status == 503)
    return [pair for pair in refused if answered[pair] == 0]


def _committed_late(url: str, log: Log) -> tuple[set[str], set[tuple[str, float]]]:
    """Ranks and rewards answered 503 (and not sent again since) whose rows are in the database
    all the same."""
    ranks = [e for e, status in log.last_rank.items() if status == 503]
    rewards = set(_unretried_rewards(log))
    with psycopg.connect(url, autocommit=True) as db:
        decided = db.execute(
            "SELECT event_id FROM decisions WHERE event_id = ANY(%s)", (ranks,)
        ).fetchall()
        stored = db.execute(
            "SELECT event_id, value FROM rewards WHERE event_id = ANY(%s)",
            ([e for e, _ in rewards],),
        ).fetchall()
    return {row[0] for row in decided}, {(e, v) for e, v in stored if (e, v) in rewards}


def test_a_call_answered_503_is_never_learned(
    proxy: SilenceableProxy, database_url: str, tmp_path: Path
) -> None:
    server = server_behind(proxy, database_url, tmp_path / "server", DB_TIMEOUT)
    log = Log()
    try:
        server.configure(rewardWaitTime=WAIT_TIME, rewardAggregation="sum")
        with httpx.Client(
            base_url=server.url, headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY}
        ) as admin:
            answer = admin.post("/admin/policies", json={"name": "shadow", "arguments": CHALLENGER})
            assert answer.status_code == 201, answer.text

        stop, pause = threading.Event(), threading.Event()
        threads = [
            threading.Thread(target=_traffic, args=(server, log, w, stop, pause), daemon=True)
            for w in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(BEFORE)
        # Stalls until both a batch of ranks and a batch of rewards committed after their 503
        # (which calls a stall catches in flight is up to the scheduler): each one opens with a
        # burst of one kind, then the mixed traffic goes on.
        stalls: list[float] = []
        late_ranks: set[str] = set()  # ranks answered 503 whose batch committed all the same
        late_rewards: set[tuple[str, float]] = set()
        retried: list[str] = []
        settled_503: set[str] = set()  # ranks answered 503 already considered for a retry
        rng = random.Random(99)
        for stall in range(MAX_STALLS):
            if len(late_ranks) >= 2 and late_rewards:
                break
            pause.set()
            time.sleep(0.2)  # the calls in flight end; the writer is idle
            proxy.freeze()
            stalled_at = time.monotonic()
            _burst(server, log, "rank" if len(late_ranks) < 2 else "reward", stall)
            pause.clear()
            time.sleep(max(0.0, stalled_at + STALL - time.monotonic()))
            assert proxy.forwarded_frozen == 0
            proxy.thaw()
            stalls.append(time.monotonic() - stalled_at)
            time.sleep(AFTER)
            ranks_now, rewards_now = _committed_late(database_url, log)
            late_ranks |= ranks_now
            late_rewards |= rewards_now
            # Within the events' wait time: every reward answered 503 again (same value), half
            # of the new ranks answered 503 again (same body: half of those whose batch
            # committed late, half of those never written), and two rewards for each of them.
            with _client(server) as client:
                for event_id, value in _unretried_rewards(log):
                    assert log.reward(client, event_id, value) == 204, event_id
                failed = sorted(
                    e for e, status in log.last_rank.items() if status == 503
                    and e not in settled_503
                )  # fmt: skip
                settled_503.update(failed)
                again = [e for e in failed if e in late_ranks][::2]
                again += [e for e in failed if e not in late_ranks][::2]
                for event_id in again:
                    assert log.rank(client, event_id, log.bodies[event_id]) == 201, event_id
                    for _ in range(2):
                        assert log.reward(client, event_id, _value(rng)) == 204, event_id
                retried += again
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
        assert not any(t.is_alive() for t in threads), "a client hung"
        with _client(server) as client:  # a reward of the last moments may have been refused
            for event_id, value in _unretried_rewards(log):
                assert log.reward(client, event_id, value) == 204, event_id
        failed_ranks = sorted(e for e, status in log.last_rank.items() if status == 503)
        assert not log.other, log.other[:5]

        # Everything final, and learned by every policy.
        with psycopg.connect(database_url, autocommit=True) as db:

            def settled() -> bool:
                pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
                seq = db.execute("SELECT coalesce(max(seq), 0) FROM joined").fetchone()[0]
                health = httpx.get(f"{server.url}/healthz", timeout=10).json()
                return pending == 0 and health["position"] >= seq

            wait_until(settled, 60, "every event final and learned")
            with httpx.Client(
                base_url=server.url, headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY}
            ) as admin:
                policies = admin.get("/admin/policies").json()["value"]
            active = [p for p in policies if p["role"] in ("champion", "challenger")]
            assert len(active) == 2, policies
            # the shadow scores are saved with the snapshots: wait for the last one
            last_seq = db.execute("SELECT max(seq) FROM joined WHERE learn").fetchone()[0]
            wait_until(
                lambda: (
                    db.execute(
                        "SELECT count(DISTINCT policy_id) FROM policy_scores WHERE seq = %s",
                        (last_seq,),
                    ).fetchone()[0]
                    == 2
                ),
                30,
                "scores of the last learned event saved",
            )
            joined = {
                row[0]: row[1:]
                for row in db.execute(
                    "SELECT event_id, seq, learn, reward, reason FROM joined"
                ).fetchall()
            }
            scores = Counter(
                seq for (seq,) in db.execute("SELECT seq FROM policy_scores").fetchall()
            )
            decided = {row[0] for row in db.execute("SELECT event_id FROM decisions").fetchall()}
            stored = Counter(
                (e, v) for e, v in db.execute("SELECT event_id, value FROM rewards").fetchall()
            )
            # the newest row of each (eventId, value) (a 503'd reward sent again wrote a second
            # one), and whether it came within its event's wait time, as the service sees it
            in_window = {
                (e, v): within
                for e, v, within in db.execute(
                    "SELECT r.event_id, r.value,"
                    " max(r.received_at) <= min(d.created_at) + %s::interval"
                    " FROM rewards r JOIN decisions d USING (event_id) GROUP BY 1, 2",
                    (WAIT_TIME,),
                ).fetchall()
            }
            voided = db.execute("SELECT count(*) FROM voided_batches").fetchone()[0]

        context = (
            f"\nstalls {', '.join(f'{t:.1f}' for t in stalls)} s; ranks {Counter(log.last_rank.values())}; rewards "
            f"{Counter(s for _, _, s in log.rewards)}; voided batches {voided}; ranks answered 503"
            f" {len(settled_503)} ({len(late_ranks)} committed late), retried {len(retried)}"
            f"\nserver log (tail):\n{server.log()[-3000:]}"
        )
        print(context)

        refused_rewards = [e for e, _, status in log.rewards if status == 503]
        assert failed_ranks and refused_rewards, f"nothing was answered 503{context}"

        # A rank whose last answer was 503: never learned, never scored.
        for event_id in failed_ranks:
            if event_id in retried:
                continue
            row = joined.get(event_id)
            if row is not None:
                seq, learn, _, reason = row
                assert not learn, f"{event_id} answered 503, yet learned ({reason}){context}"
                assert scores[seq] == 0, f"{event_id} answered 503, yet scored{context}"

        # Acknowledged means durable; every reward sum is exactly the rewards answered 204.
        acknowledged: dict[str, list[float]] = defaultdict(list)
        for event_id, value, status in log.rewards:
            if status == 204:
                acknowledged[event_id].append(value)
        ranked = [e for e, status in log.last_rank.items() if status == 201]
        assert not [e for e in ranked if e not in decided], f"a 201 without its decision{context}"
        for event_id, values in acknowledged.items():
            for value, n in Counter(values).items():
                assert stored[(event_id, value)] >= n, f"a 204 without its reward{context}"
        for event_id in ranked:
            seq, learn, reward, reason = joined[event_id]
            assert learn and reason == "reward", f"{event_id}: {joined[event_id]}{context}"
            # a reward answered 204 after its event's wait time is kept, not learned
            counted = [v for v in acknowledged[event_id] if in_window[(event_id, v)]]
            expected = sum(counted)
            assert abs(reward - expected) < 1e-9, (
                f"{event_id}: learned with {reward}, the rewards answered 204 within its wait"
                f" time sum to {expected} ({counted} of {acknowledged[event_id]}){context}"
            )
            assert scores[seq] == 2, f"{event_id}: {scores[seq]} scores, not 2{context}"

        # A retried rank: answered 201, learned exactly once.
        for event_id in retried:
            assert log.last_rank[event_id] == 201
            assert event_id in ranked

        # Last: the stall did what it is for (a batch committed after its calls' 503, and
        # among its ranks some were retried and some not).
        assert voided >= 2, f"fewer than two batches committed after their 503{context}"
        assert len(late_ranks) >= 2, f"fewer than two ranks committed after their 503{context}"
        assert late_rewards, f"no reward committed after its 503{context}"
    finally:
        proxy.thaw()
        server.stop()
