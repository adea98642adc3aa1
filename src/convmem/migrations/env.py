"""Alembic environment: runs on the connection `convmem.migrate` hands over."""

from __future__ import annotations

from alembic import context

from convmem.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # ALTER TABLE through table copies on SQLite
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
