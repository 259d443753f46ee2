"""Every logged row knows the group-commit batch that wrote it, so a batch whose callers were
answered 503 can be voided (never learned, never counted) and a crashed writer's batches
resolved.

- `writers`: one row per connection a group-commit writer opened: who (host, boot id, pid,
  process start), the last batch it sent (`last_batch`), the newest batch through which every
  batch it sent is resolved (`resolved_through`: answered in time, or voided), and whether it is
  `closed` (nothing of it is unresolved any more).
- `voided_batches`: batches that committed although their callers were answered 503.
- `batch` on `pending`, `rewards` and `activations`: the batch of the row (0: written before
  this migration, resolved).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
TABLES = ("pending", "rewards", "activations")


def upgrade() -> None:
    op.create_table(
        "writers",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("boot_id", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("process_start", sa.BigInteger, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("last_batch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("resolved_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "voided_batches",
        sa.Column("batch", sa.BigInteger, primary_key=True),
        sa.Column("voided_at", TS, nullable=False),
    )
    for table in TABLES:
        op.add_column(table, sa.Column("batch", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "batch")
    op.drop_table("voided_batches")
    op.drop_table("writers")
