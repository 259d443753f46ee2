"""Acknowledged only after the commit, shown deterministically: a proxy between the service and
PostgreSQL holds the database's replies, so a call's row commits while the service cannot know
it yet. The row is seen committed on the database itself, and no 201/204 leaves the service
until the replies are released; then every call is answered, and durable.

The proxy needs PostgreSQL over TCP: with the embedded unix-socket server the test is skipped.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import Server, rank_body, scalar
from tests.proxy import SilenceableProxy, proxy, server_behind, via

__all__ = ["proxy"]  # the fixture

DB_TIMEOUT = 20.0  # no 503 while the replies are held
WATCH_S = 1.0  # how long, after its row is committed, a call is watched for an early answer
ROW_TIMEOUT = 10.0
SETTLE_S = 0.3  # see _held_call


def _committed(db: psycopg.Connection[Any], table: str, event_id: str) -> bool:
    return scalar(db, f"SELECT count(*) FROM {table} WHERE event_id = %s", event_id) > 0


class _Call(threading.Thread):
    """One HTTP call in a thread of its own; `status` once it is answered."""

    def __init__(self, server: Server, path: str, body: dict[str, Any] | None) -> None:
        super().__init__(daemon=True)
        self.server, self.path, self.body = server, path, body
        self.status: int | None = None
        self.answered_at: float | None = None

    def run(self) -> None:
        with self.server.client() as c:
            response = c.post(self.path, json=self.body)
        self.answered_at = time.monotonic()
        self.status = response.status_code


def _held_call(
    proxy: SilenceableProxy, server: Server, db: psycopg.Connection[Any], call: tuple[str, dict[str, Any] | None],
    table: str, event_id: str, expected: int,
) -> None:  # fmt: skip
    # The writer sends nothing of its own between 0.1 s after its last batch (it publishes what
    # it answered) and 1 s (a heartbeat): held then, the call's batch is the next thing it sends.
    time.sleep(SETTLE_S)
    proxy.hold_replies()
    try:
        thread = _Call(server, *call)
        thread.start()
        deadline = time.monotonic() + ROW_TIMEOUT
        while not _committed(db, table, event_id):
            assert thread.status is None, f"{call[0]}: answered {thread.status} before its commit"
            assert time.monotonic() < deadline, f"{call[0]}: its row never committed"
            time.sleep(0.01)
        committed_at = time.monotonic()
        thread.join(WATCH_S)
        early = (thread.answered_at or committed_at) - committed_at
        assert thread.status is None, (
            f"{call[0]}: answered {thread.status} ({early:+.3f} s from its row being seen"
            " committed) while the database's reply was held by the proxy"
        )
    finally:
        proxy.release_replies()
    thread.join(DB_TIMEOUT)
    assert thread.status == expected, f"{call[0]}: {thread.status}"
    assert _committed(db, table, event_id)


def test_no_answer_leaves_before_the_commit_reply(
    proxy: SilenceableProxy, database_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    server = server_behind(proxy, database_url, tmp_path / "server", DB_TIMEOUT)
    try:
        with server.client() as c:
            # The service works through the proxy, and the writer has prepared the statements
            # the calls below use (a statement's first use is a round trip of its own, which
            # the held replies would stall).
            warm = f"ack-warm-{uuid.uuid4()}"
            assert c.post("/rank", json=rank_body(warm)).status_code == 201
            assert c.post(f"/events/{warm}/reward", json={"value": 1}).status_code == 204
        ranked, deferred = f"ack-rank-{uuid.uuid4()}", f"ack-deferred-{uuid.uuid4()}"
        _held_call(proxy, server, db, ("/rank", rank_body(ranked)), "decisions", ranked, 201)
        with server.client() as c:
            body = rank_body(deferred, deferActivation=True)
            assert c.post("/rank", json=body).status_code == 201
        reward = (f"/events/{ranked}/reward", {"value": 0.5})
        _held_call(proxy, server, db, reward, "rewards", ranked, 204)
        activate = (f"/events/{deferred}/activate", None)
        _held_call(proxy, server, db, activate, "activations", deferred, 204)
    finally:
        proxy.release_replies()
        server.stop()


def test_held_replies_hold_only_the_server_side(proxy: SilenceableProxy, database_url: str) -> None:
    """The proxy itself: while replies are held, a statement reaches PostgreSQL (its effect is
    seen on a direct connection) and its answer does not come back until they are released."""
    table = f"ack_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as direct:
        direct.execute(f"CREATE TABLE {table} (x int)")
        try:
            with psycopg.connect(via(database_url, proxy.port), autocommit=True) as proxied:
                proxy.hold_replies()
                done = threading.Event()

                def insert() -> None:
                    proxied.execute(f"INSERT INTO {table} VALUES (1)")
                    done.set()

                worker = threading.Thread(target=insert, daemon=True)
                worker.start()
                deadline = time.monotonic() + ROW_TIMEOUT
                while direct.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                assert not done.wait(WATCH_S)
                proxy.release_replies()
                assert done.wait(ROW_TIMEOUT)
        finally:
            proxy.release_replies()
            direct.execute(f"DROP TABLE {table}")
