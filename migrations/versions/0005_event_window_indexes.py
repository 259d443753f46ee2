"""An event's rewards and activations within its window are one range of one index.

`ix_rewards_event_id` alone let the planner combine it with `ix_rewards_received_at` in a
bitmap AND whose cost grows with the whole table (the learner's join step under a sustained
reward load went from milliseconds to seconds); `(event_id, received_at)` answers "this
event's rewards up to the end of its window" directly, and event lookups as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("rewards", "activations"):
        op.create_index(f"ix_{table}_event_id_received_at", table, ["event_id", "received_at"])
        op.drop_index(f"ix_{table}_event_id", table_name=table)


def downgrade() -> None:
    for table in ("rewards", "activations"):
        op.create_index(f"ix_{table}_event_id", table, ["event_id"])
        op.drop_index(f"ix_{table}_event_id_received_at", table_name=table)
