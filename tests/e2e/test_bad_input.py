"""Bad input, over raw HTTP: a 4xx with Personalizer's error body, never a 5xx, and nothing
written (no decision, reward or activation row; no configuration or policy change).

One table, one test: each case names the request and the answer it must get. Cases marked
`bug` hold the correct behaviour and are strict xfails until the application is fixed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, API_KEY, Server, rank_body

V1 = "/personalizer/v1.0"
RANK = f"{V1}/rank"
MIB = 1024 * 1024
KNOWN = "{known}"  # in a path: the eventId of a decision the module logged (see `known_event`)
UNKNOWN = f"never-logged-{uuid.uuid4()}"
MARK = "@@raw@@"  # in a body: replaced by a raw JSON token (NaN, a huge integer)
DROP = object()  # in `_rank` changes: remove the key
HUGE_INT = "1" + "0" * 400  # valid JSON, but no float can hold it

RANK_INVALID = ("BadRequest", "InvalidRankRequest")
REWARD_INVALID = ("BadRequest", "InvalidRewardRequest")


def _rank(event_id: str | None, **changes: Any) -> dict[str, Any]:
    """A valid rank body (see `test_the_base_requests_are_accepted`) with `changes` applied."""
    body = rank_body(event_id)
    for key, value in changes.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _raw(body: Any, token: str) -> bytes:
    """`body` as JSON with the string MARK replaced by the raw token `token`."""
    return json.dumps(body).replace(json.dumps(MARK), token).encode()


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    status: int
    codes: tuple[str, str | None]  # error.code, innerError.code (None: the handler sets none)
    body: Any = None  # a JSON value, sent encoded
    raw: bytes | None = None  # or exactly these bytes
    method: str = "POST"
    key: str | None = API_KEY
    event_id: str | None = None  # a rank eventId that must not be logged
    chunked: bool = False
    bug: str | None = None

    def content(self) -> bytes | None:
        if self.raw is not None:
            return self.raw
        return None if self.body is None else json.dumps(self.body).encode()

    def logged_event_id(self) -> str | None:
        if self.event_id is not None:
            return self.event_id
        if isinstance(self.body, dict) and isinstance(self.body.get("eventId"), str):
            return self.body["eventId"]
        return None


def rank_case(case_id: str, body: Any = None, raw: bytes | None = None, **kw: Any) -> Case:
    return Case(case_id, RANK, 400, RANK_INVALID, body=body, raw=raw, **kw)


def reward_case(case_id: str, body: Any = None, raw: bytes | None = None, **kw: Any) -> Case:
    path = f"{V1}/events/{KNOWN}/reward"
    return Case(case_id, path, 400, REWARD_INVALID, body=body, raw=raw, **kw)


_ACTIONS_51 = [{"id": f"a{i}", "features": [{"n": i}]} for i in range(51)]
_BIG_RANK = json.dumps(_rank("bad-too-large", contextFeatures=[{"u": {"pad": "x" * MIB}}]))

CASES: list[Case] = [
    # -- the body is not a JSON object ------------------------------------------------------
    rank_case("malformed-json", raw=b'{"contextFeatures": [{"user": '),
    rank_case("trailing-garbage", raw=json.dumps(_rank("bad-trailing")).encode() + b" }"),
    rank_case("json-array-not-object", body=[_rank("bad-array")]),
    rank_case("json-string-not-object", body="contextFeatures"),
    rank_case("json-null", raw=b"null"),
    rank_case(
        "nan-literal",
        raw=_raw(_rank("bad-nan", contextFeatures=[{"user": {"age": MARK}}]), "NaN"),
        event_id="bad-nan",
    ),
    rank_case(
        "infinity-literal",
        raw=_raw(_rank("bad-inf", contextFeatures=[{"user": {"age": MARK}}]), "-Infinity"),
        event_id="bad-inf",
    ),
    rank_case(
        "invalid-utf8",
        raw=json.dumps(_rank("bad-utf8"))
        .replace("gold", "go\udcffld", 1)
        .encode("utf-8", "surrogateescape"),
        event_id="bad-utf8",
    ),
    rank_case("empty-body", raw=b""),
    rank_case("whitespace-body", raw=b" \r\n\t "),
    # -- contextFeatures ----------------------------------------------------------------------
    rank_case("missing-context", body=_rank("bad-no-context", contextFeatures=DROP)),
    rank_case("null-context", body=_rank("bad-null-context", contextFeatures=None)),
    rank_case("empty-context-list", body=_rank("bad-empty-context", contextFeatures=[])),
    rank_case("empty-context-object", body=_rank("bad-empty-object", contextFeatures=[{}])),
    rank_case(
        "only-ignored-context-names",
        body=_rank("bad-ignored", contextFeatures=[{"_id": "u1", "_ns": {"tier": "gold"}}]),
    ),
    rank_case("context-not-a-list", body=_rank("bad-ctx-dict", contextFeatures={"u": {"x": 1}})),
    rank_case("context-item-not-object", body=_rank("bad-ctx-item", contextFeatures=["gold"])),
    rank_case(
        "null-in-context", body=_rank("bad-ctx-null", contextFeatures=[{"u": {"x": 1}}, None])
    ),
    rank_case("empty-feature-name", body=_rank("bad-empty-name", contextFeatures=[{"": 1}])),
    rank_case(
        "empty-nested-feature-name",
        body=_rank("bad-empty-nested", contextFeatures=[{"user": {"": "x"}}]),
    ),
    rank_case(
        "array-with-non-numbers",
        body=_rank("bad-array-items", contextFeatures=[{"user": {"scores": [1, "two", 3]}}]),
    ),
    rank_case(
        "array-with-bool",
        body=_rank("bad-array-bool", contextFeatures=[{"user": {"scores": [1, True]}}]),
    ),
    rank_case(
        "namespace-with-pipe",
        body=_rank("bad-ns-pipe", contextFeatures=[{"a|b": {"x": 1}}]),
    ),
    rank_case(
        "namespace-with-space",
        body=_rank("bad-ns-space", contextFeatures=[{"a b": {"x": 1}}]),
    ),
    rank_case(
        "namespace-with-colon",
        body=_rank("bad-ns-colon", contextFeatures=[{"a:b": {"x": 1}}]),
    ),
    rank_case(
        "huge-integer-feature",
        raw=_raw(_rank("bad-huge-int", contextFeatures=[{"user": {"n": MARK}}]), HUGE_INT),
        event_id="bad-huge-int",
    ),
    rank_case(
        "nul-in-feature-value",
        body=_rank("bad-nul-value", contextFeatures=[{"user": {"name": "a\u0000b"}}]),
    ),
    rank_case(
        "lone-surrogate-in-feature",
        body=_rank("bad-surrogate", contextFeatures=[{"user": {"name": "\ud800"}}]),
    ),
    # -- actions -----------------------------------------------------------------------------
    rank_case("missing-actions", body=_rank("bad-no-actions", actions=DROP)),
    rank_case("actions-not-a-list", body=_rank("bad-actions-dict", actions={"id": "a0"})),
    rank_case("zero-actions", body=_rank("bad-zero-actions", actions=[])),
    rank_case("fifty-one-actions", body=_rank("bad-51-actions", actions=_ACTIONS_51)),
    rank_case(
        "duplicate-action-ids",
        body=_rank("bad-dup-ids", actions=[{"id": "a", "features": [{"x": 1}]}] * 2),
    ),
    rank_case("empty-action-id", body=_rank("bad-empty-id", actions=[{"id": "", "features": []}])),
    rank_case(
        "whitespace-action-id",
        body=_rank("bad-blank-id", actions=[{"id": " \t ", "features": [{"x": 1}]}]),
    ),
    rank_case(
        "non-string-action-id",
        body=_rank("bad-int-id", actions=[{"id": 5, "features": [{"x": 1}]}]),
    ),
    rank_case(
        "missing-action-id",
        body=_rank("bad-no-id", actions=[{"features": [{"x": 1}]}]),
    ),
    rank_case(
        "action-id-257-chars",
        body=_rank("bad-long-id", actions=[{"id": "a" * 257, "features": [{"x": 1}]}]),
    ),
    rank_case("null-action", body=_rank("bad-null-action", actions=[None])),
    rank_case("action-not-object", body=_rank("bad-action-str", actions=["a0"])),
    rank_case(
        "action-features-not-a-list",
        body=_rank("bad-action-feats", actions=[{"id": "a", "features": {"x": 1}}]),
    ),
    rank_case(
        "nul-in-action-id",
        body=_rank("bad-nul-id", actions=[{"id": "a\u0000b", "features": [{"x": 1}]}]),
    ),
    rank_case(
        "action-without-features",
        body=_rank("bad-featureless", actions=[{"id": "a0"}]),
    ),
    # -- eventId, excludedActions, deferActivation -------------------------------------------
    rank_case("event-id-257-chars", body=_rank("e" * 257)),
    rank_case("empty-event-id", body=_rank("")),
    rank_case("whitespace-event-id", body=_rank("   ")),
    rank_case("event-id-control-char", body=_rank("bad\nid")),
    rank_case("event-id-del-char", body=_rank("bad\x7fid")),
    rank_case("event-id-not-string", body=_rank(None, eventId=123)),
    rank_case("excluded-not-a-list", body=_rank("bad-excl-str", excludedActions="a0")),
    rank_case("excluded-non-strings", body=_rank("bad-excl-int", excludedActions=[0, 1])),
    rank_case(
        "every-action-excluded",
        body=_rank("bad-excl-all", excludedActions=["a0", "a1", "a2"]),
    ),
    rank_case(
        "excluded-false",
        body=_rank("bad-excl-false", excludedActions=False),
    ),
    rank_case(
        "excluded-object",
        body=_rank("bad-excl-obj", excludedActions={}),
    ),
    rank_case("defer-not-bool", body=_rank("bad-defer-str", deferActivation="yes")),
    rank_case("defer-number", body=_rank("bad-defer-int", deferActivation=1)),
    # -- size, versions, routing, keys ---------------------------------------------------------
    Case(
        "body-over-1mib",
        RANK,
        413,
        ("PayloadSizeExceeded", "PayloadSizeExceeded"),
        raw=_BIG_RANK.encode(),
        event_id="bad-too-large",
    ),
    Case(
        "body-over-1mib-chunked",
        RANK,
        413,
        ("PayloadSizeExceeded", "PayloadSizeExceeded"),
        raw=_BIG_RANK.encode(),
        event_id="bad-too-large",
        chunked=True,
    ),
    Case(
        "unknown-api-version",
        "/personalizer/rank?api-version=1999-01-01",
        400,
        ("BadRequest", "InvalidApiVersion"),
        body=_rank("bad-api-version"),
    ),
    Case(
        "missing-api-version",
        "/personalizer/rank",
        400,
        ("BadRequest", "InvalidApiVersion"),
        body=_rank("bad-no-api-version"),
    ),
    Case(
        "unknown-path-version",
        "/personalizer/v9.9/rank?api-version=2022-09-01-preview",
        404,
        ("ResourceNotFound", None),
        body=_rank("bad-path-version"),
    ),
    Case("get-rank", RANK, 405, ("MethodNotAllowed", None), method="GET"),
    Case(
        "put-rank",
        RANK,
        405,
        ("MethodNotAllowed", None),
        method="PUT",
        body=_rank("bad-put-rank"),
    ),
    Case("unknown-path", f"{V1}/no-such-thing", 404, ("ResourceNotFound", None), body={}),
    Case("unknown-root-path", "/no-such-thing", 404, ("ResourceNotFound", None), method="GET"),
    Case(
        "missing-key",
        RANK,
        401,
        ("Unauthorized", "InvalidApiAccess"),
        body=_rank("bad-no-key"),
        key=None,
    ),
    Case(
        "wrong-key",
        RANK,
        401,
        ("Unauthorized", "InvalidApiAccess"),
        body=_rank("bad-wrong-key"),
        key="not-the-key",
    ),
    Case(
        "empty-key",
        RANK,
        401,
        ("Unauthorized", "InvalidApiAccess"),
        body=_rank("bad-empty-key"),
        key="",
    ),
    Case(
        "api-key-get-service-config",
        f"{V1}/configurations/service",
        401,
        ("Unauthorized", "InvalidApiAccess"),
        method="GET",
    ),
    Case(
        "api-key-put-service-config",
        f"{V1}/configurations/service",
        401,
        ("Unauthorized", "InvalidApiAccess"),
        method="PUT",
        body={
            "rewardWaitTime": "PT5S",
            "defaultReward": 1,
            "rewardAggregation": "sum",
            "explorationPercentage": 0.9,
            "modelExportFrequency": "PT5S",
            "logRetentionDays": 90,
        },
    ),
    Case(
        "api-key-put-policy",
        f"{V1}/configurations/policy",
        401,
        ("Unauthorized", "InvalidApiAccess"),
        method="PUT",
        body={"name": "x", "arguments": "--cb_explore_adf --epsilon 0.5"},
    ),
    Case(
        "api-key-delete-policy",
        f"{V1}/configurations/policy",
        401,
        ("Unauthorized", "InvalidApiAccess"),
        method="DELETE",
    ),
    # -- reward ------------------------------------------------------------------------------
    reward_case("reward-value-missing", body={}),
    reward_case("reward-value-null", body={"value": None}),
    reward_case("reward-value-string", body={"value": "0.5"}),
    reward_case("reward-value-bool", body={"value": True}),
    reward_case("reward-value-above-1", body={"value": 1.5}),
    reward_case("reward-value-below-minus-1", body={"value": -1.01}),
    reward_case("reward-value-list", body={"value": [0.5]}),
    reward_case("reward-body-not-object", body=[0.5]),
    reward_case("reward-body-number", body=0.5),
    reward_case("reward-malformed-json", raw=b'{"value": 0.5'),
    reward_case("reward-empty-body", raw=b""),
    reward_case("reward-nan-literal", raw=_raw({"value": MARK}, "NaN")),
    reward_case(
        "reward-huge-integer",
        raw=_raw({"value": MARK}, HUGE_INT),
    ),
    Case(
        "reward-unknown-event",
        f"{V1}/events/{UNKNOWN}/reward",
        404,
        ("ResourceNotFound", "ResourceNotFound"),
        body={"value": 0.5},
    ),
    Case(
        "reward-event-id-257-chars",
        f"{V1}/events/{'e' * 257}/reward",
        400,
        REWARD_INVALID,
        body={"value": 0.5},
    ),
    Case(
        "reward-event-id-control-char",
        f"{V1}/events/bad%01id/reward",
        400,
        REWARD_INVALID,
        body={"value": 0.5},
    ),
    Case(
        "reward-missing-key",
        f"{V1}/events/{KNOWN}/reward",
        401,
        ("Unauthorized", "InvalidApiAccess"),
        body={"value": 0.5},
        key=None,
    ),
    Case(
        "reward-get",
        f"{V1}/events/{KNOWN}/reward",
        405,
        ("MethodNotAllowed", None),
        method="GET",
    ),
    # -- activate ----------------------------------------------------------------------------
    Case(
        "activate-unknown-event",
        f"{V1}/events/{UNKNOWN}/activate",
        404,
        ("ResourceNotFound", "ResourceNotFound"),
    ),
    Case(
        "activate-blank-event-id",
        f"{V1}/events/%20%20/activate",
        400,
        ("BadRequest", "InvalidEventIdToActivate"),
    ),
    Case(
        "activate-event-id-257-chars",
        f"{V1}/events/{'e' * 257}/activate",
        400,
        ("BadRequest", "InvalidEventIdToActivate"),
    ),
    Case(
        "activate-wrong-key",
        f"{V1}/events/{KNOWN}/activate",
        401,
        ("Unauthorized", "InvalidApiAccess"),
        key="not-the-key",
    ),
]


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(reason=f"BUG: {case.bug}", strict=True)] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


def _state(db) -> dict[str, Any]:
    """What a bad request must not change."""
    counts = {
        table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("decisions", "pending", "rewards", "activations", "policies")
    }
    config = db.execute("SELECT document::text FROM service_config").fetchall()
    champion = db.execute("SELECT id FROM policies WHERE role = 'champion'").fetchall()
    return {**counts, "service_config": config, "champion": champion}


def _send(server: Server, case: Case, path: str) -> httpx.Response:
    headers = {} if case.key is None else {"Ocp-Apim-Subscription-Key": case.key}
    content: Any = case.content()
    if content is not None:
        headers["Content-Type"] = "application/json"
        if case.chunked:
            data = content
            content = iter([data[i : i + 65536] for i in range(0, len(data), 65536)])
    # A fresh connection per case: a server that fails a request may close its connection.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.request(case.method, path, content=content, headers=headers)


@pytest.fixture(scope="module")
def known_event(server: Server) -> str:
    """A logged decision, so reward cases fail on their body, not on an unknown eventId."""
    event_id = f"known-{uuid.uuid4()}"
    with server.client() as c:
        r = c.post("/rank", json=rank_body(event_id))
    assert r.status_code == 201, r.text
    return event_id


def test_the_cases_cover_enough_ground() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_is_refused_and_nothing_is_written(
    server: Server, db, known_event: str, case: Case
) -> None:
    path = case.path.replace(KNOWN, known_event)
    before = _state(db)

    r = _send(server, case, path)

    assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    assert r.status_code == case.status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    code, inner = case.codes
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    if inner is None:
        assert "innerError" not in error, error
    else:
        assert error["innerError"]["code"] == inner, error
    assert "x-ms-error-code" in r.headers
    assert _state(db) == before
    event_id = case.logged_event_id()
    if event_id is not None:
        logged = db.execute("SELECT count(*) FROM decisions WHERE event_id = %s", (event_id,))
        assert logged.fetchone()[0] == 0


def test_the_base_requests_are_accepted(server: Server, db, known_event: str) -> None:
    """The bodies the cases break are valid: only the broken part is refused."""
    event_id = f"base-{uuid.uuid4()}"
    with server.client() as c:
        assert c.post("/rank", json=_rank(event_id)).status_code == 201
        assert c.post("/rank", json=_rank(None, excludedActions=["a0", "a1"])).status_code == 201
        reward = c.post(f"/events/{known_event}/reward", json={"value": 1})
        assert reward.status_code == 204
        assert c.post(f"/events/{known_event}/activate").status_code == 204
    with httpx.Client(base_url=server.url, timeout=30) as c:
        query = c.post(
            "/personalizer/rank?api-version=2022-09-01-preview",
            json=_rank(None),
            headers={"Ocp-Apim-Subscription-Key": API_KEY},
        )
        assert query.status_code == 201, query.text
        admin = c.get(
            f"{V1}/configurations/service", headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY}
        )
        assert admin.status_code == 200
    logged = db.execute("SELECT count(*) FROM decisions WHERE event_id = %s", (event_id,))
    assert logged.fetchone()[0] == 1
