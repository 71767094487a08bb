"""Alembic's environment: always handed an open connection by `seance.gateway.store.migrate` (which
holds the lock that keeps replicas starting together from migrating twice)."""

from __future__ import annotations

from alembic import context

from seance.gateway.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
