"""Alembic environment: the engine (and, for autogenerate, the metadata of civicseal.schema) is handed over
by civicseal.store.migrate, never read from a file or imported: the store imports no domain package."""

from alembic import context

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=config.attributes.get("metadata"), render_as_batch=True)
    context.run_migrations()
