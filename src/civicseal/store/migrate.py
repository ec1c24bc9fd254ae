"""Alembic migrations run from the installed package, with no alembic.ini to ship or find."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine, metadata: MetaData | None = None) -> Config:
    """``metadata`` (``civicseal.schema.metadata``) is needed only to autogenerate a migration."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    config.attributes["metadata"] = metadata
    return config


def upgrade(engine: Engine, metadata: MetaData | None = None) -> None:
    command.upgrade(alembic_config(engine, metadata), "head")
