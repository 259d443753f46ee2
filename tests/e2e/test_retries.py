"""Retried ranks against a real server: a decision logged by an earlier version, whose digest is
the legacy one (no `v2:` prefix), is still replayed to a retry of the same request, and a
different request under its eventId is still a 409."""

from __future__ import annotations

import json
import uuid

from app.api.rank import legacy_request_hash, read_rank_request
from tests.conftest import Server, rank_body, scalar


def test_a_decision_logged_under_the_legacy_digest_is_replayed(server: Server, db) -> None:
    event_id = f"legacy-{uuid.uuid4()}"
    body = rank_body(event_id, context=[{"user": {"tier": "gold", "w": 1e-05}}])
    with server.client() as client:
        first = client.post("/rank", json=body)
        assert first.status_code == 201, first.text
        digest = scalar(db, "SELECT request_hash FROM decisions WHERE event_id = %s", event_id)
        assert digest.startswith("v2:")
        # the row as a version before v2 would have logged it
        legacy = legacy_request_hash(read_rank_request(json.dumps(body).encode()), event_id)
        db.execute("UPDATE decisions SET request_hash = %s WHERE event_id = %s", (legacy, event_id))
        again = client.post("/rank", json=body)
        assert again.status_code == 201, again.text
        assert again.json() == first.json()
        other = client.post("/rank", json={**body, "excludedActions": ["a0"]})
        assert other.status_code == 409, other.text
    assert scalar(db, "SELECT count(*) FROM decisions WHERE event_id = %s", event_id) == 1
