"""The schema, as SQLAlchemy Core tables. Only migrations change the database itself."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# One row per rank call, written before the 201 and never updated.
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("context", JSONB, nullable=False),  # contextFeatures, cleaned
    sa.Column("actions", JSONB, nullable=False),  # [{id, features}], cleaned, request order
    sa.Column("excluded", JSONB, nullable=False),  # [action id]
    sa.Column("ranking", JSONB, nullable=False),  # the answer: [{id, probability}]
    sa.Column("reward_action", sa.Integer, nullable=False),  # index answered
    sa.Column("probability", sa.Float, nullable=False),  # P(served reward_action)
    sa.Column("policy_action", sa.Integer, nullable=False),  # index the policy drew
    sa.Column("policy_probability", sa.Float, nullable=False),
    sa.Column("example", sa.Text, nullable=False),  # VW JSON text of context + eligible actions
    sa.Column("reward_position", sa.Integer, nullable=False),  # reward_action among eligible
    sa.Column("policy_position", sa.Integer, nullable=False),  # policy_action among eligible
    sa.Column("policy_id", sa.Integer, nullable=False),
    sa.Column("policy_name", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("learning_mode", sa.Text, nullable=False),
    sa.Column("deferred", sa.Boolean, nullable=False),
)

# Decisions not yet final: the joiner's work queue (a row leaves when the event is joined).
pending = sa.Table(
    "pending",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("deferred", sa.Boolean, nullable=False),
    sa.Column("batch", sa.BigInteger, nullable=False, server_default="0"),  # see writers
)

rewards = sa.Table(
    "rewards",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("slot_id", sa.Text),  # multi-slot rewards; NULL for single-slot
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("batch", sa.BigInteger, nullable=False, server_default="0"),  # see writers
    # an event's rewards within its window: one index range, whatever the table's size
    sa.Index("ix_rewards_event_id_received_at", "event_id", "received_at"),
)

activations = sa.Table(
    "activations",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("batch", sa.BigInteger, nullable=False, server_default="0"),  # see writers
    sa.Index("ix_activations_event_id_received_at", "event_id", "received_at"),
)

# One row per connection of a group-commit writer. A batch is `(writer id << 32) | n`; every
# pending decision, reward and activation carries the batch that wrote it (0: before batches
# were recorded). A batch is resolved once it is at most its writer's `resolved_through`; a
# resolved batch counts unless it is in `voided_batches` (it committed, but its callers were
# answered 503). The learner finalizes nothing that is unresolved.
writers = sa.Table(
    "writers",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("boot_id", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("process_start", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_batch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("resolved_through", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
)

voided_batches = sa.Table(
    "voided_batches",
    metadata,
    sa.Column("batch", sa.BigInteger, primary_key=True),
    sa.Column("voided_at", sa.DateTime(timezone=True), nullable=False),
)

# Final events in the one order every policy learns them in.
joined_seq = sa.Sequence("joined_seq", metadata=metadata)
joined = sa.Table(
    "joined",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("reward", sa.Float, nullable=False),
    sa.Column("learn", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reward_count", sa.Integer, nullable=False),
    sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),  # learner_lease
)

# Every policy ever configured; a new row is a fresh model. One champion at a time.
policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("arguments", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),  # champion | challenger | retired
    sa.Column("start_seq", sa.BigInteger, nullable=False),  # learns joined events after this
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("one_champion", "role", unique=True, postgresql_where=sa.text("role = 'champion'")),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=False),
    sa.Column("cursor", sa.BigInteger, nullable=False),  # last joined seq learned
    sa.Column("events_learned", sa.BigInteger, nullable=False),
    sa.Column("model", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),  # learner_lease
    sa.Index("snapshots_policy_cursor", "policy_id", "cursor"),
)

# The learner's fencing token: one row. A process elected learner increments `epoch` in the
# transaction that takes the learner lock; each learner write commits only while its epoch is
# the current one (app.store.lease). `snapshots.epoch` and `joined.epoch` record the writer.
learner_lease = sa.Table(
    "learner_lease",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("host", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("process_start", sa.BigInteger),
    sa.Column("elected_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("id = 1", name="learner_lease_one_row"),
)

# Joined events a policy's VW refused to learn (its cursor moved past them), with VW's reason;
# saved with the policy's snapshot.
refused_events = sa.Table(
    "refused_events",
    metadata,
    sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),  # joined.seq
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("refused_at", sa.DateTime(timezone=True), nullable=False),
)

# Personalizer's service configuration: one row, the JSON document as GET returns it.
service_config = sa.Table(
    "service_config",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("document", JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Progressive validation: each active policy's probability of the logged action of a final
# event, recorded before the policy learned it (Online events only). Evaluation and the
# promotion gate read from it.
policy_scores = sa.Table(
    "policy_scores",
    metadata,
    sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),  # joined.seq
    sa.Column("probability", sa.Float, nullable=False),
    # the event's logging probability and final reward, copied so estimates read one table
    sa.Column("logged_probability", sa.Float, nullable=False),
    sa.Column("reward", sa.Float, nullable=False),
    sa.Index("ix_policy_scores_seq", "seq"),  # deleting logs deletes their scores by seq
)

# Offline evaluations (Personalizer's evaluations API): the request and, once done, the report.
evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("evaluation_type", sa.Text, nullable=False),  # Manual | Auto
    sa.Column("status", sa.Text, nullable=False),  # Running | Succeeded | Failed
    sa.Column("request", JSONB, nullable=False),  # {policies: [{name, arguments}], optimize}
    sa.Column("attempts", sa.Integer, nullable=False),  # job starts (a restart re-runs it)
    sa.Column("error", sa.Text),
    sa.Column("report", JSONB),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

# The audit of the champion: every promotion, refusal and rollback, with its evidence.
promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    # promote | refuse | rollback, or a new champion model made by an admin call:
    # policy (PUT configurations/policy) | resetPolicy | import (PUT model) | resetModel |
    # rewardSettings (a change of configurations/service that starts a fresh model)
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # admin | applyFromEvaluation | auto
    sa.Column("key_id", sa.Text, nullable=False),  # which key asked (a digest, never the key)
    sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id")),
    sa.Column("policy_name", sa.Text, nullable=False),
    sa.Column("previous_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=False),
    sa.Column("evaluation_id", sa.Text),
    sa.Column("evidence", JSONB, nullable=False),
)
