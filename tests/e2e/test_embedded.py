"""Zero setup: with no DATABASE_URL and no keys the service starts an embedded PostgreSQL under
its data dir, generates both keys once, and keeps data and keys across restarts."""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server

BODY = {
    "contextFeatures": [{"user": {"tier": "gold"}}],
    "actions": [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}],
    "eventId": "embedded-1",
}

BODY = {
    "contextFeatures": [{"user": {"tier": "gold"}}],
    "actions": [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}],
    "eventId": "embedded-1",
}


@pytest.fixture
def tmp_root() -> Iterator[Path]:
    """A directory outside pytest's tmp tree: pgserver (as root) runs PostgreSQL as its own
    user and opens up the permissions of every parent directory, which pytest resets."""
    path = Path(tempfile.mkdtemp(prefix="ds-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_postgres_and_generated_keys(tmp_root: Path) -> None:
    tmp_path = tmp_root
    server = Server(None, tmp_path / "var", env={"DS_API_KEY": "", "DS_ADMIN_KEY": ""})
    server.start(timeout=120)
    try:
        keys_file = tmp_path / "var" / "keys.json"
        keys = json.loads(keys_file.read_text())
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        assert keys["api"] != keys["admin"] and len(keys["api"]) >= 32
        assert keys["api"] in server.log() and keys["admin"] in server.log()
        assert (tmp_path / "var" / "postgres" / "PG_VERSION").exists()

        with server.client(keys["api"]) as client:
            answer = client.post("/rank", json=BODY)
            assert answer.status_code == 201, answer.text
            assert client.post("/events/embedded-1/reward", json={"value": 1}).status_code == 204
        with server.client("not-a-key") as client:
            assert client.post("/events/embedded-1/reward", json={"value": 1}).status_code == 401

        printed = server.log().count(keys["admin"])
        server.restart()
        assert server.log().count(keys["admin"]) == printed, "keys are printed once, at creation"
        assert json.loads(keys_file.read_text()) == keys
        with server.client(keys["api"]) as client:
            again = client.post("/rank", json=BODY)
        assert again.status_code == 201 and again.json() == answer.json()  # data survived
        assert httpx.get(f"{server.url}/healthz").json()["database"] == "reachable"
    finally:
        server.stop()
