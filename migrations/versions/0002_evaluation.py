"""Shadow scores, offline evaluations and the promotion audit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "policy_scores",
        sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("logged_probability", sa.Float, nullable=False),
        sa.Column("reward", sa.Float, nullable=False),
    )
    op.create_index("ix_policy_scores_seq", "policy_scores", ["seq"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("evaluation_type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("report", JSONB),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_evaluations_created_at", "evaluations", ["created_at"])
    op.create_table(
        "promotions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id")),
        sa.Column("policy_name", sa.Text, nullable=False),
        sa.Column("previous_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("evaluation_id", sa.Text),
        sa.Column("evidence", JSONB, nullable=False),
    )


def downgrade() -> None:
    for table in ("promotions", "evaluations", "policy_scores"):
        op.drop_table(table)
