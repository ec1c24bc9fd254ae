"""Alembic environment: the engine is handed over by civicseal.store.migrate, never read from a file."""

from alembic import context

from civicseal.store.schema import metadata

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
