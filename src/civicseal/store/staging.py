"""A staging area: scratch tables a long job fills batch by batch before one short transaction merges them.

On SQLite the staging tables live in a separate file beside the database, ATTACHed as ``stage``: filling it
takes that file's lock, never the store's, so revocations and unlock attempts land while a job stages.
The file holds register rows (names, addresses), so it is private, claimed as scratch (a killed run's file
is swept) and removed when the job ends. On PostgreSQL they are the session's temporary tables, which are
not written to the WAL and vanish with the session.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine

from civicseal.scratch import claimed
from civicseal.store.base import Base, unsampled
from civicseal.store.bulk import sqlite_insert
from civicseal.store.driver import sqlite3
from civicseal.store.engine import is_sqlite

SCHEMA = "stage"


@contextmanager
def staging_area(engine: Engine) -> Iterator[Connection]:
    """A connection with an empty staging area; the area is gone when the block ends, however it ends."""
    with engine.connect() as conn:
        if not is_sqlite(conn):
            try:
                yield conn
            finally:
                conn.rollback()
                with conn.begin():
                    conn.exec_driver_sql("DISCARD TEMP")
            return
        database = Path(str(conn.engine.url.database))
        path = database.parent / f".{database.name}-stage.{secrets.token_hex(8)}.part"
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        raw = conn.connection.driver_connection
        try:
            with claimed(database.parent, path):
                raw.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (str(path),))  # type: ignore[union-attr]
                try:
                    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-16384"):
                        raw.execute(f"PRAGMA {SCHEMA}.{pragma}")  # type: ignore[union-attr]  # scratch: no journal
                    yield conn
                finally:
                    conn.rollback()
                    raw.execute(f"DETACH DATABASE {SCHEMA}")  # type: ignore[union-attr]
        finally:
            path.unlink(missing_ok=True)


def create_table(
    conn: Connection, name: str, columns: Sequence[str], like: str | None = None, like_columns: Sequence[str] = ()
) -> None:
    """A staging table: ``columns`` (full definitions), then ``like_columns``, the columns of table ``like``,
    typed as there on PostgreSQL (SQLite takes values as they come). ``LIKE`` copies no statistics target, so
    a column the store does not sample (``NOT_SAMPLED``) is not sampled in the copy either."""
    if is_sqlite(conn):
        conn.exec_driver_sql(f"CREATE TABLE {SCHEMA}.{name} ({', '.join([*columns, *like_columns])})")
        return
    conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({', '.join([*columns, *([f'LIKE {like}'] if like else [])])})")
    if like and (columns_apart := unsampled(Base.metadata.tables[like])):
        settings = ", ".join(f"ALTER COLUMN {column} SET STATISTICS 0" for column in columns_apart)
        conn.exec_driver_sql(f"ALTER TABLE {name} {settings}")


def create_index(conn: Connection, table: str, columns: str) -> None:
    index = f"ix_{table}_{columns.replace(', ', '_')}"
    schema = f"{SCHEMA}." if is_sqlite(conn) else ""
    conn.exec_driver_sql(f"CREATE INDEX {schema}{index} ON {table} ({columns})")


def staging_file(conn: Connection) -> Path | None:
    """The file of a staging area on SQLite, which other processes may write to; None on PostgreSQL."""
    if not is_sqlite(conn):
        return None
    files = {row[1]: row[2] for row in conn.connection.driver_connection.execute("PRAGMA database_list")}  # type: ignore[union-attr]
    return Path(files[SCHEMA])


_writers: dict[Path, sqlite3.Connection] = {}  # a worker process's connection to each staging file


def write_to_file(path: Path, table: str, names: Sequence[str], columns: Sequence[list[object]]) -> None:
    """Rows given by column into a table of a staging file, from a process of its own: one writer at a time,
    each in turn."""
    conn = _writers.get(path)
    if conn is None:
        conn = _writers[path] = sqlite3.connect(path, timeout=600, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")  # scratch: no journal, as in the staging area itself
        conn.execute("PRAGMA synchronous=OFF")
    statement, rows = sqlite_insert(table, names, columns)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(statement, rows)
    conn.execute("COMMIT")
