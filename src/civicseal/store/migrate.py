"""Alembic migrations run from the installed package, with no alembic.ini to ship or find.

A store is used only at the schema this civicseal was written for (:data:`REVISION`): a command meeting a
store an older civicseal made says to run ``civicseal upgrade`` instead of failing inside a query, and one
meeting a store a newer civicseal migrated refuses to touch it. The check reads one row, and loads no Alembic.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Engine, MetaData, text
from sqlalchemy.exc import DBAPIError

from civicseal.store.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
REVISION: Final = "0017"  # the newest migration; tests/test_migrations.py checks it against Alembic's head


class SchemaBehind(StoreError):
    """The store was made by an older civicseal: ``civicseal upgrade`` brings it to this one's schema."""


class StoreEmpty(StoreError):
    """The store holds no civicseal schema: most often a home made on PostgreSQL, used from a shell that does
    not set the variable naming its database, so the home's SQLite file was looked at instead."""


EMPTY_FILE = (
    "{home}: civicseal.db holds no civicseal data: a home made on PostgreSQL needs CIVICSEAL_DATABASE_URL set"
    " for every command, as it was for `civicseal init`"
)
EMPTY_DATABASE = (
    "the store's database holds no civicseal data: check that CIVICSEAL_DATABASE_URL names the database"
    " `civicseal init` was run on"
)


def alembic_config(engine: Engine, metadata: MetaData | None = None) -> Config:
    """``metadata`` (``civicseal.schema.metadata``) is needed only to autogenerate a migration."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    config.attributes["metadata"] = metadata
    return config


def upgrade(engine: Engine, metadata: MetaData | None = None) -> None:
    from alembic import command

    command.upgrade(alembic_config(engine, metadata), "head")


def revision(engine: Engine) -> str | None:
    """The store's schema revision; None for a store no migration has run on yet (a new one)."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
        except DBAPIError:
            return None  # no version table: nothing has been created in this store yet


def check_revision(engine: Engine, empty: str = EMPTY_DATABASE) -> None:
    """Refuse a store at another schema than this civicseal's, or at none, saying what to do about it."""
    refused = refusal(revision(engine), empty)
    if refused is not None:
        raise refused


def refusal(found: str | None, empty: str = EMPTY_DATABASE) -> StoreError | None:
    """Why a store at revision ``found`` may not be used by this civicseal (``empty`` if at none); None when it
    may."""
    if found is None:
        return StoreEmpty(empty)
    if found == REVISION:
        return None
    if found < REVISION:  # revisions are numbered 0001, 0002, …
        return SchemaBehind(
            f"the store is at schema {found}, this civicseal needs {REVISION}: run `civicseal upgrade` (back up first)"
        )
    return StoreError(f"the store is at schema {found}, newer than this civicseal's {REVISION}: install that version")
