"""Decisions' large columns compressed with lz4 where the server has it.

PostgreSQL compresses a large value (TOAST) with pglz unless told otherwise; lz4 compresses a
50-action decision (~30 kB of JSON and VW text) in a fraction of the CPU time, which on a
machine the service shares with its database is rank throughput. Servers built without lz4
(the embedded one) keep pglz. Only new rows are affected; nothing is rewritten.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("context", "actions", "ranking", "example")


def _has_lz4() -> bool:
    query = sa.text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    return bool(op.get_bind().execute(query).scalar())


def upgrade() -> None:
    if _has_lz4():
        for column in COLUMNS:
            op.execute(f"ALTER TABLE decisions ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if not _has_lz4():  # nothing was changed (and before PostgreSQL 14 there is no SET COMPRESSION)
        return
    for column in COLUMNS:
        op.execute(f"ALTER TABLE decisions ALTER COLUMN {column} SET COMPRESSION DEFAULT")
