"""Bulk rows into a table inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

PostgreSQL pays a round trip per row for executemany; COPY streams the rows in one command. SQLite runs
in-process, where executemany is already the fast path.
"""

from __future__ import annotations

import re
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


def copy_in(conn: Connection, table: str, columns: Sequence[str], data: bytes) -> None:
    """Rows already in COPY text format (see :func:`copy_text`) into a PostgreSQL table, as they are."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[union-attr]
        copy.write(data)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
NULL = type(None)


def copy_text(rows: Sequence[Sequence[object]]) -> bytes:
    """Rows (text, numbers, flags, bytes or None) in PostgreSQL's COPY text format, built a column at a time
    with a few C calls each rather than a Python call per value: a process that has no connection (a
    parsing worker) prepares them, and the one with the connection only sends the bytes."""
    if not rows:
        return b""
    columns = [_copy_column(list(column)) for column in zip(*rows, strict=True)]
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


def _copy_column(values: list) -> list[str]:
    kinds = set(map(type, values))
    nulls = NULL in kinds
    kinds.discard(NULL)
    if kinds == {bytes}:
        text = [v if v is None else "\\\\x" + v.hex() for v in values]  # bytea's hex input, its \\ escaped
    elif kinds <= {str}:
        present = [v for v in values if v is not None] if nulls else values
        if _NEEDS_ESCAPE.search("".join(present)) is None:
            text = values
        else:
            text = [v if v is None else v.translate(_COPY_ESCAPES) for v in values]
    else:  # numbers and flags: str(True) is a boolean PostgreSQL reads
        text = [v if v is None else str(v) for v in values]
    return ["\\N" if v is None else v for v in text] if nulls else text


def analyze(conn: Connection, *tables: str, sample: int | None = None) -> None:
    """Give PostgreSQL's planner the size of freshly filled tables (it has no statistics for them until
    autovacuum comes by, and guesses a nested loop over 200,000 rows); SQLite plans these joins well without.

    ``sample`` lowers the statistics target for this transaction, for scratch tables whose plans need their
    sizes more than their value distributions: ANALYZE reads 300 rows per unit of it."""
    if is_sqlite(conn):
        return
    if sample is not None:
        conn.exec_driver_sql(f"SET LOCAL default_statistics_target = {int(sample)}")
    for table in tables:
        conn.exec_driver_sql(f"ANALYZE {table}")
