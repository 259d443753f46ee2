"""Test fixtures: a real PostgreSQL (the machine's, else an embedded one) and real servers.

`DS_TEST_DATABASE_URL` names the server to use (default: the local one on 127.0.0.1:5432,
database `test`). When it cannot be reached, an embedded PostgreSQL from `pgserver` is started
in a temporary directory. Each test module gets a fresh database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
API_KEY = "test-api-key"
ADMIN_KEY = "test-admin-key"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server where the tests may create databases."""
    url = os.environ.get("DS_TEST_DATABASE_URL", DEFAULT_URL)
    if _reachable(url):
        yield url
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="ds-test-pg-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        yield server.get_uri()
        server.cleanup()


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database for one test module."""
    name = f"ds_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A `decision-service serve` subprocess against a given database."""

    database_url: str | None
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        env = {**os.environ, "DS_API_KEY": API_KEY, "DS_ADMIN_KEY": ADMIN_KEY, **self.env}
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def client(self, key: str = API_KEY) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/personalizer/v1.0",
            headers={"Ocp-Apim-Subscription-Key": key},
            timeout=30,
        )

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_KEY)

    def configure(self, **changes: object) -> dict[str, Any]:
        """Change fields of the service configuration; returns the stored document."""
        with self.admin() as admin:
            document = admin.get("/configurations/service").json()
            document.pop("latestApprenticeModeMetrics", None)
            document.update(changes)
            answer = admin.put("/configurations/service", json=document)
            assert answer.status_code == 200, answer.text
            return answer.json()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running server on the module's fresh database."""
    srv = Server(database_url, tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct connection to the module's database, to check what the server wrote."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def scalar(db: psycopg.Connection[Any], query: str, *params: object) -> Any:
    """The one value a query returns."""
    return db.execute(query, params).fetchone()[0]  # type: ignore[index]


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something true (returned), failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        time.sleep(0.1)
    return result


def rank_body(
    event_id: str | None = None,
    context: list[dict[str, Any]] | None = None,
    n_actions: int = 3,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contextFeatures": context or [{"user": {"tier": "gold"}}],
        "actions": [{"id": f"a{i}", "features": [{"color": f"c{i}"}]} for i in range(n_actions)],
        **extra,
    }
    if event_id is not None:
        body["eventId"] = event_id
    return body
