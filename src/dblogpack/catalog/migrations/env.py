"""Alembic environment: migrations run on the connection the catalog hands over (no ini file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from dblogpack.catalog.tables import metadata

# Any 64-bit constant: serializes concurrent `serve`/`worker` starts migrating one PostgreSQL.
_PG_MIGRATION_LOCK = 0x64626C6F67706B


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


run_migrations(context.config.attributes["connection"])
