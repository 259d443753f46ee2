"""The migrations build exactly the schema `app/store/tables.py` describes (so queries and
migrations cannot drift apart), and they run twice without harm."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.store.db import migrate, sync_url
from app.store.tables import metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # nothing pending: a no-op
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []
