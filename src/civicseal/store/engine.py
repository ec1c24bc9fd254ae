"""Engines and transactions for the embedded SQLite store and for PostgreSQL.

SQLite runs in WAL mode with a 10 s busy timeout and every transaction begins IMMEDIATE, so `serve` and
the CLI can share one file: a writer waits for the lock instead of failing half-way through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

DATABASE_URL_ENV = "CIVICSEAL_DATABASE_URL"
SQLITE_FILE = "civicseal.db"


def database_url(home: Path) -> str:
    """The store of a home: PostgreSQL when configured, else the SQLite file inside the home."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home / SQLITE_FILE}"


def make_engine(url: str) -> Engine:
    """Statement parameters are hidden from every database error: they may be personal data."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: a city's indexes stay in memory while they grow
        cursor.execute("PRAGMA temp_store=MEMORY")  # the programme run's staging tables
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "sqlite"


def placeholder(conn: Connection) -> str:
    """The DB-API parameter marker, for bulk statements sent straight to the driver."""
    return "?" if is_sqlite(conn) else "%s"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One atomic unit of work: everything in it is committed together or not at all."""
    with engine.begin() as conn:
        yield conn
