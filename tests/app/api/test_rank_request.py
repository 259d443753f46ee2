"""The rank body's fast path (msgspec, one pass, no copy) answers exactly as the full path:
the same request, to the type of every number, or the same 400 with the same message.

Bodies are generated at random around every rule of `policies.features` (ignored and empty
names, nulls, non-finite and huge numbers, arrays, namespaces too deep or with forbidden
characters, NUL and lone surrogates behind escapes, ids, exclusions, eventIds, deferral) and
read both ways; the benchmark bodies must take the fast path.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from app.api.common import parse_json
from app.api.rank import (
    INVALID,
    _clean_request,
    legacy_request_hash,
    parse_rank_request,
    read_rank_request,
    request_hash,
)
from app.errors import ApiError
from bench import load

NAMES = ["a", "b", "user", "_hidden", "", "x:y", "n|s", "ünï", "\x00nul", "z" * 300, "é"]
STRINGS = ["red", "", "null", "ünïcode", "a\x00b", "\ud800", "x" * 10, "\x7f"]
NUMBERS: list[Any] = [0, 1, -3, 2.5, 1e-05, -0.0, 1e308, 12345678901234567890123, 10**400]


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(STRINGS)
    if kind < 0.55:
        return rng.choice(NUMBERS)
    if kind < 0.62:
        return rng.choice([True, False])
    if kind < 0.66:
        return None
    if kind < 0.8 and depth < 10:
        return _object(rng, depth + 1)
    if kind < 0.95:
        return [rng.choice(NUMBERS) for _ in range(rng.randrange(4))]
    return rng.choice([[1, "x"], [True], [None]])


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    return {rng.choice(NAMES): _value(rng, depth) for _ in range(rng.randrange(4))}


def _features(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice([None, {}, "x", [None], [1], []])
    return [_object(rng, 1) for _ in range(rng.randrange(1, 3))]


def _plain_features(rng: random.Random) -> list[dict[str, Any]]:
    """Features that break no rule and need no cleaning (so the fast path is exercised)."""
    namespace = {"kind": rng.choice(["a", "b"]), "n": rng.random(), "flag": True}
    flat: dict[str, Any] = {"c": f"v{rng.randrange(5)}", "w": rng.randrange(10), "a": [1, 0.5]}
    return [flat | {"ns": namespace}] if rng.random() < 0.5 else [flat]


def _body(rng: random.Random) -> dict[str, Any]:
    plain = rng.random() < 0.5
    features = _plain_features if plain else _features
    n = rng.choice([0, 1, 2, 5, 51]) if rng.random() < 0.1 else rng.randrange(1, 6)
    ids = [rng.choice([f"a{i}", f"a{i}", "", " ", "a0", "\x00", "i" * 300]) for i in range(n)]
    if plain:
        ids = [f"a{i}" for i in range(n)]
    body: dict[str, Any] = {
        "contextFeatures": features(rng),
        "actions": [{"id": i, "features": features(rng)} for i in ids],
    }
    if rng.random() < 0.1:
        body["actions"] = rng.choice([None, {}, "x", [None], [{"id": 1, "features": []}]])
    if rng.random() < 0.3:
        body["excludedActions"] = rng.choice([None, [], ["a0"], ["a0", "a0", "zz"], "a0", [1]])
    if rng.random() < 0.5:
        body["eventId"] = rng.choice(["e1", "", " ", None, 7, "e\x01", "\ud800", "e" * 300])
    if rng.random() < 0.3:
        body["deferActivation"] = rng.choice([True, False, None, "yes", 1])
    if rng.random() < 0.05:
        body.pop(rng.choice(["contextFeatures", "actions"]))
    return body


def _encode(rng: random.Random, body: Any) -> bytes:
    text = json.dumps(body, ensure_ascii=rng.random() < 0.2)
    if rng.random() < 0.05:  # raw tokens JSON does not have, or a double's overflow
        text = text.replace("2.5", rng.choice(["NaN", "Infinity", "1e400"]), 1)
    return text.encode("utf-8", "surrogatepass")


def _outcome(read: Any, raw: bytes) -> Any:
    try:
        req = read(raw)
    except ApiError as exc:
        return ("error", exc.status, exc.code, exc.inner, exc.message)
    exact = json.dumps  # spells 1 and 1.0 apart, where == would not
    return (
        "request",
        exact(req.context),
        [(a.id, exact(a.features)) for a in req.actions],
        req.excluded,
        req.event_id,
        req.deferred,
    )


def _full(raw: bytes) -> Any:
    return parse_rank_request(parse_json(raw, INVALID))


def test_the_fast_path_answers_as_the_full_path() -> None:
    rng = random.Random(20261201)
    fast = 0
    for _ in range(4000):
        raw = _encode(rng, _body(rng))
        expected = _outcome(_full, raw)
        assert _outcome(read_rank_request, raw) == expected, raw[:300]
        if _clean_request(raw) is not None:
            fast += 1
            assert expected[0] == "request"
    assert fast > 500  # the comparison covered the fast path, not only the fallback


@pytest.mark.parametrize("actions", [1, 5, 50])
def test_benchmark_bodies_take_the_fast_path(actions: int) -> None:
    rng = random.Random(actions)
    for event_id in (None, "evt-1"):
        raw = load.encode(load.rank_body(rng, actions, event_id=event_id))
        assert _clean_request(raw) is not None


def test_the_digest_is_versioned_and_the_legacy_one_is_kept() -> None:
    body = {
        "contextFeatures": [{"user": {"tier": "gold", "visits": 3, "w": 1e-05}}],
        "actions": [{"id": "a", "features": [{"c": "x", "_skip": 1}]}, {"id": "b", "features": [{"c": "y"}]}],
        "excludedActions": ["b"],
    }  # fmt: skip
    req = read_rank_request(json.dumps(body).encode())
    digest = request_hash(req, "evt")
    assert digest.startswith("v2:") and len(digest) == 3 + 64
    # the same meaning spelled otherwise: other key order, defaults and ignored names
    respelled = {
        "excludedActions": ["b", "b"],
        "deferActivation": None,
        "actions": [{"features": [{"c": "x"}], "id": "a"}, {"id": "b", "features": [{"c": "y"}]}],
        "contextFeatures": [{"user": {"w": 0.00001, "visits": 3, "tier": "gold"}}],
    }  # fmt: skip
    again = read_rank_request(json.dumps(respelled).encode())
    assert request_hash(again, "evt") == digest
    assert legacy_request_hash(again, "evt") == legacy_request_hash(req, "evt")
    # the legacy digest is what versions before v2 logged for this request (pinned: the
    # value the code of commit 4b49efa computes)
    assert legacy_request_hash(req, "evt") == (
        "9e0a8abaefe202f070a302f0afedbde08242579e8a63a0a69d1e70264a0974e3"
    )
