"""The vertical slice: decisions, rewards, activations, the join queue, policies, snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("context", JSONB, nullable=False),
        sa.Column("actions", JSONB, nullable=False),
        sa.Column("excluded", JSONB, nullable=False),
        sa.Column("ranking", JSONB, nullable=False),
        sa.Column("reward_action", sa.Integer, nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("policy_action", sa.Integer, nullable=False),
        sa.Column("policy_probability", sa.Float, nullable=False),
        sa.Column("example", sa.Text, nullable=False),
        sa.Column("reward_position", sa.Integer, nullable=False),
        sa.Column("policy_position", sa.Integer, nullable=False),
        sa.Column("policy_id", sa.Integer, nullable=False),
        sa.Column("policy_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("learning_mode", sa.Text, nullable=False),
        sa.Column("deferred", sa.Boolean, nullable=False),
    )
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_table(
        "pending",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deferred", sa.Boolean, nullable=False),
    )
    op.create_index("ix_pending_created_at", "pending", ["created_at"])
    op.create_table(
        "rewards",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("slot_id", sa.Text),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_index("ix_rewards_event_id", "rewards", ["event_id"])
    op.create_index("ix_rewards_received_at", "rewards", ["received_at"])
    op.create_table(
        "activations",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_index("ix_activations_event_id", "activations", ["event_id"])
    op.execute("CREATE SEQUENCE joined_seq")
    op.create_table(
        "joined",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("reward", sa.Float, nullable=False),
        sa.Column("learn", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reward_count", sa.Integer, nullable=False),
        sa.Column("joined_at", TS, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("arguments", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("start_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(
        "one_champion",
        "policies",
        ["role"],
        unique=True,
        postgresql_where=sa.text("role = 'champion'"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("events_learned", sa.BigInteger, nullable=False),
        sa.Column("model", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("snapshots_policy_cursor", "snapshots", ["policy_id", "cursor"])
    op.create_table(
        "service_config",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "service_config",
        "snapshots",
        "policies",
        "joined",
        "activations",
        "rewards",
        "pending",
        "decisions",
    ):
        op.drop_table(table)
    op.execute("DROP SEQUENCE joined_seq")
