"""What the group-commit writer sends: the decision row, and the statements of a batch.

Decisions are inserted and queued for the joiner with their batch (each JSON column parsed once):
one row by a plain INSERT … VALUES, several by one INSERT … SELECT over one array per column
(sent in binary); rewards and activations of a batch by one statement, its rows as one JSON
array; a rank retried under a logged eventId by `REPLAY_DECISION`. The first statement of a batch
also records the batch and what the writer has answered for (`MARKED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY

from app.store import writers as w
from app.store.tables import decisions, pending
from policies import codec


class DecisionRow(NamedTuple):
    """A decision as it is logged (the columns of `decisions` after `created_at`)."""

    event_id: str
    request_hash: str
    context: Any  # JSON: contextFeatures, cleaned
    actions: Any  # JSON: [{id, features}], cleaned, request order
    excluded: Any  # JSON: [action id]
    ranking: Any  # JSON: the answer, [{id, probability}]
    reward_action: int
    probability: float
    policy_action: int
    policy_probability: float
    example: str
    reward_position: int
    policy_position: int
    policy_id: int
    policy_name: str
    model_version: str
    learning_mode: str
    deferred: bool


COLUMNS = DecisionRow._fields
_JSON_FIELDS = tuple(c for c in COLUMNS if isinstance(decisions.c[c].type, postgresql.JSONB))
# How each column is sent, from its type in `decisions` (JSON as text, parsed once by the insert)
_SENT_AS = {sa.Integer: "int4", sa.Float: "float8", sa.Boolean: "bool", sa.Text: "text",
            postgresql.JSONB: "text"}  # fmt: skip
SENT_AS = {c: _SENT_AS[type(decisions.c[c].type)] for c in COLUMNS}


@dataclass(frozen=True)
class Logged:
    """A decision already logged under an eventId (what a retry is answered with)."""

    request_hash: str
    ranking: list[dict[str, Any]]


# Decisions, inserted and queued for the joiner with their batch (each JSON column parsed once):
# one row by a plain INSERT … VALUES, several by one INSERT … SELECT over one array per column
# (sent in binary). That is what costs least, in PostgreSQL and in the client, against one
# INSERT per row in a pipeline and against COPY into a staging table (`python3 -m bench.rows`).
QUEUE = """queued AS (
    INSERT INTO pending (event_id, created_at, deferred, batch)
    SELECT event_id, now(), deferred, %(batch)s FROM inserted
)"""
INSERT_DECISION = f"""
WITH inserted AS (
    INSERT INTO decisions (created_at, {", ".join(COLUMNS)})
    VALUES (now(), {", ".join(f"%({c})s::jsonb" if c in _JSON_FIELDS else f"%({c})s" for c in COLUMNS)})
    ON CONFLICT DO NOTHING
    RETURNING event_id, deferred
), {QUEUE}
SELECT event_id FROM inserted
"""
INSERT_DECISIONS = f"""
WITH inserted AS (
    INSERT INTO decisions (created_at, {", ".join(COLUMNS)})
    SELECT now(), {", ".join(f"d.{c}::jsonb" if c in _JSON_FIELDS else f"d.{c}" for c in COLUMNS)}
    FROM unnest({", ".join(f"%({c})b::{SENT_AS[c]}[]" for c in COLUMNS)})
        AS d({", ".join(COLUMNS)})
    ON CONFLICT DO NOTHING
    RETURNING event_id, deferred
), {QUEUE}
SELECT event_id FROM inserted
"""

# Rewards and activations of logged decisions, in the order they were received: one statement
# per batch, its rows as one JSON array.
INSERT_EVENTS = """
WITH ops AS (
    SELECT * FROM json_to_recordset(%(ops)s::json)
        AS o(n int, kind text, event_id text, value float8, slot_id text)
), known AS (
    SELECT event_id FROM decisions WHERE event_id IN (SELECT event_id FROM ops)
), saved_rewards AS (
    INSERT INTO rewards (event_id, slot_id, value, received_at, batch)
    SELECT event_id, slot_id, value, now(), %(batch)s FROM ops
    WHERE kind = 'reward' AND event_id IN (SELECT event_id FROM known) ORDER BY n
), saved_activations AS (
    INSERT INTO activations (event_id, received_at, batch)
    SELECT event_id, now(), %(batch)s FROM ops
    WHERE kind = 'activation' AND event_id IN (SELECT event_id FROM known) ORDER BY n
)
SELECT event_id FROM known
"""


# A rank retried under a logged eventId: the logged decision, and, when the request means the
# same and the decision is still pending but does not count (its batch unresolved, or voided:
# its caller may have been answered 503), the decision moves to this batch, so it counts
# exactly when this answer is a 201.
def _replay_statement() -> str:
    logged = (
        sa.select(decisions.c.request_hash, decisions.c.ranking)
        .where(decisions.c.event_id == sa.bindparam("event_id"))
        .cte("logged")
    )
    digests = sa.bindparam("digests", type_=ARRAY(sa.Text))
    revived = (
        sa.update(pending)
        .where(
            pending.c.event_id == sa.bindparam("event_id"),
            sa.select(logged.c.request_hash).scalar_subquery() == sa.any_(digests),
            sa.not_(w.counts(pending.c.batch)),
        )
        .values(batch=sa.bindparam("batch"))
        .returning(pending.c.event_id)
        .cte("revived")
    )
    query = sa.select(
        logged.c.request_hash,
        sa.cast(logged.c.ranking, sa.Text),
        sa.select(sa.func.count()).select_from(revived).scalar_subquery(),
    )
    return str(query.compile(dialect=postgresql.psycopg.dialect()))  # type: ignore[attr-defined]


REPLAY_DECISION = _replay_statement()

# The first statement of a batch also records the batch and what the writer has answered for
# (and the batches it voids), in CTEs of its own: a batch of one call is one statement.
_MARK = """mark AS (
    UPDATE writers SET last_batch = %(batch)s, resolved_through = %(resolved)s, seen_at = now()
    WHERE id = %(writer)s
), voided AS (
    INSERT INTO voided_batches (batch, voided_at) SELECT unnest(%(voids)s::bigint[]), now()
    ON CONFLICT DO NOTHING
), """


def _marked(statement: str) -> str:
    head, _, rest = statement.partition("WITH ")
    assert not head.strip(), "a batch statement starts with WITH"
    return "WITH " + _MARK + rest


MARKED = {
    query: _marked(query)
    for query in (INSERT_DECISION, INSERT_DECISIONS, INSERT_EVENTS, REPLAY_DECISION)
}


def row_params(row: DecisionRow) -> dict[str, Any]:
    """INSERT_DECISION's parameters, the JSON columns encoded."""
    params = row._asdict()
    for name in _JSON_FIELDS:
        params[name] = codec.dumps_text(params[name])
    return params


def column_params(rows: list[DecisionRow]) -> dict[str, Any]:
    """INSERT_DECISIONS' arrays: one per column, the JSON columns encoded."""
    params: dict[str, Any] = {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}
    for name in _JSON_FIELDS:
        params[name] = [codec.dumps_text(value) for value in params[name]]
    return params
