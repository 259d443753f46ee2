"""Health for orchestrators: `/livez` answers while the process runs and looks at nothing else;
`/readyz` says whether this process can log a decision now, notices a silent database path
within 10 s and recovers when it carries bytes again; neither reveals the process, the policy
or the model without the admin key.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, API_KEY, Server
from tests.proxy import SilenceableProxy, proxy, via

__all__ = ["proxy"]  # the fixture

NOTICED_WITHIN = 10.0  # a silent partition shows in /readyz within this
SECRET_FIELDS = {"pid", "policy", "policyId", "modelVersion", "role", "writerId"}


def _get(server: Server, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=5)


def test_livez_and_readyz_through_a_silent_database_path(
    proxy: SilenceableProxy, database_url: str, tmp_path: Path
) -> None:
    server = Server(via(database_url, proxy.port), tmp_path / "server").start()
    try:
        live, ready = _get(server, "/livez"), _get(server, "/readyz")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        for key in (None, API_KEY):  # the API key is not enough to see more
            assert not SECRET_FIELDS & set(_get(server, "/readyz", key).json())
        detail = _get(server, "/readyz", ADMIN_KEY).json()
        assert detail["status"] == "ready" and detail["connected"] is True
        assert isinstance(detail["pid"], int) and detail["writerId"] >= 1

        proxy.freeze()
        frozen_at = time.monotonic()
        noticed = None
        while time.monotonic() < frozen_at + NOTICED_WITHIN + 2:
            live = _get(server, "/livez")
            assert live.status_code == 200, "livez must not depend on the database"
            answer = _get(server, "/readyz")
            if answer.status_code == 503:
                noticed = time.monotonic() - frozen_at
                assert answer.json() == {"status": "not ready"}
                break
            time.sleep(0.2)
        assert noticed is not None and noticed <= NOTICED_WITHIN, f"noticed after {noticed}"

        proxy.thaw()
        thawed_at = time.monotonic()
        while _get(server, "/readyz").status_code != 200:
            assert time.monotonic() < thawed_at + 15, "not ready again after the thaw"
            time.sleep(0.2)
    finally:
        proxy.thaw()
        server.stop()
