"""One learner, provably: the learner's epoch (fencing token), the epoch that wrote each
snapshot and each joined event, and the events a policy's VW refused.

- `learner_lease`: one row. A process elected learner increments `epoch` in the transaction in
  which it takes the learner lock, and records who it is; every write of the learner commits
  only while its epoch is still the current one (`app.store.lease`).
- `epoch` on `snapshots` and `joined`: the learner epoch that wrote the row (0: before this
  migration). Along `snapshots.id` and `joined.seq` it never decreases.
- `refused_events`: a joined event a policy's VW refused to learn, with VW's reason; saved in the
  transaction of the policy's snapshot, like its scores.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "learner_lease",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("host", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("process_start", sa.BigInteger),
        sa.Column("elected_at", TS),
        sa.CheckConstraint("id = 1", name="learner_lease_one_row"),
    )
    op.execute("INSERT INTO learner_lease (id, epoch) VALUES (1, 0)")
    for table in ("snapshots", "joined"):
        op.add_column(table, sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "refused_events",
        sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("refused_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("refused_events")
    for table in ("snapshots", "joined"):
        op.drop_column(table, "epoch")
    op.drop_table("learner_lease")
