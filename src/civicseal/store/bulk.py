"""Bulk rows into a table inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

PostgreSQL pays a round trip per row for executemany; COPY streams the rows in one command. SQLite runs
in-process, where executemany is already the fast path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from civicseal.store.engine import is_sqlite, placeholder


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    names = ", ".join(columns)
    if is_sqlite(conn):
        marks = ", ".join(placeholder(conn) for _ in columns)
        batch = list(rows)
        if batch:
            conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
        return
    raw = conn.connection.driver_connection  # the transaction's own psycopg connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def analyze(conn: Connection, *tables: str) -> None:
    """Give PostgreSQL's planner the size of freshly filled temporary tables (it has no statistics for them,
    and guesses a nested loop over 200,000 rows); SQLite plans these joins well without."""
    if not is_sqlite(conn):
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {table}")
