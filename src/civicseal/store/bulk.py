"""Bulk rows into a table inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

PostgreSQL pays a round trip per row for executemany; COPY streams the rows in one command. SQLite runs
in-process, where executemany is already the fast path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, Row, bindparam, text
from sqlalchemy.exc import IntegrityError, OperationalError

from civicseal.store.engine import is_sqlite
from civicseal.store.errors import KeyHeldTwice, StoreError


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Rows into a table inside the caller's transaction: :func:`insert_columns` of their columns, so every bulk
    insert takes one path per store (psycopg's ``write_row`` per row cost 0.1 s per 150,000 rows)."""
    insert_columns(conn, table, columns, [list(column) for column in zip(*rows, strict=True)])


def insert_columns(conn: Connection, table: str, names: Sequence[str], columns: Sequence[list[object]]) -> None:
    """Rows given by column into a table inside the caller's transaction: shaped for SQLite's binding
    (:func:`sqlite_insert`), or sent to PostgreSQL as COPY text built a column at a time."""
    if not columns or not columns[0]:
        return
    if is_sqlite(conn):
        statement, rows = sqlite_insert(table, names, columns)
        conn.exec_driver_sql(statement, list(rows))
    else:
        copy_in(conn, table, names, copy_text(columns))


def sqlite_insert(table: str, names: Sequence[str], columns: Sequence[list[object]]) -> tuple[str, Iterator[tuple]]:
    """The statement and rows for SQLite's executemany of values given by column, shaped for its binding.

    The sqlite3 modules bind a str, an int or a bytearray as it is, but look every None, bool and bytes up
    among their adapters first (pysqlite3's with attribute look-ups that raise, about a microsecond each, and a
    city's staged rows hold millions). So flags go as 0 and 1, bytes as bytearrays, and a column's Nones as
    empty values the statement turns back into NULL (``NULLIF(?, '')``), unless the column holds empty values
    of its own. SQLite stores the same values. Staging a city's rows: 4.6 s of CPU as they came, 2.4 s so.
    """
    shaped = [_shaped(column) for column in columns]
    marks = ", ".join(mark for mark, _ in shaped)
    rows = zip(*(values for _, values in shaped), strict=True)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows


_BOUND_AS: Final = {bytes: bytearray, bool: int}  # types bound as themselves once converted
_EMPTY: Final = {str: ("''", ""), bytearray: ("x''", bytearray())}  # a NULL's stand-in: its literal, its value


def _shaped(column: list[object]) -> tuple[str, list[object]]:
    """A column's placeholder, and its values as the driver binds them without adapting."""
    kinds = set(map(type, column))
    nulls = NULL in kinds
    kinds.discard(NULL)
    kind = kinds.pop() if len(kinds) == 1 else str if not kinds else None
    convert = _BOUND_AS.get(kind)  # type: ignore[arg-type]
    empty = _EMPTY.get(convert or kind) if nulls else None  # type: ignore[arg-type]
    if empty is not None and empty[1] in column:
        empty = None  # empty values of its own: its Nones stay None
    if empty is None:
        if convert is None:
            return "?", column
        return "?", [v if v is None else convert(v) for v in column] if nulls else list(map(convert, column))
    literal, blank = empty
    if convert is None:
        return f"NULLIF(?, {literal})", [blank if v is None else v for v in column]
    return f"NULLIF(?, {literal})", [blank if v is None else convert(v) for v in column]


def read_batches(
    conn: Connection, sql: str, params: Mapping[str, object] | None = None, *, size: int = 10_000
) -> Iterator[Sequence[Sequence[object]]]:
    """The rows of a query (``:name`` parameters), a batch of plain tuples at a time, streamed.

    On SQLite straight from the driver's cursor, in the caller's transaction: a step that reads the whole
    register spent a third of its reading in building SQLAlchemy's rows. On PostgreSQL through a server-side
    cursor, so that the rows are not all held at once.
    """
    if is_sqlite(conn):
        if not conn.in_transaction():
            conn.begin()  # what executing through SQLAlchemy begins: later reads see the same snapshot
        cursor = conn.connection.driver_connection.execute(sql, dict(params or {}))  # type: ignore[union-attr]
        try:
            while rows := cursor.fetchmany(size):
                yield rows
        finally:
            cursor.close()
        return
    result = conn.execute(text(sql).execution_options(stream_results=True, yield_per=size), dict(params or {}))
    yield from result.partitions(size)


def copy_in(conn: Connection, table: str, columns: Sequence[str], data: bytes, *, frozen: bool = False) -> None:
    """Rows already in COPY text format (see :func:`copy_text`) into a PostgreSQL table, as they are.

    ``frozen`` rows (``COPY FREEZE``, for a table emptied in this transaction by :func:`keys_built_after`) are
    visible to every later transaction as written: no reader after the commit rewrites each page to mark
    them committed, and no vacuum freezes them again."""
    raw = conn.connection.driver_connection
    freeze = " (FREEZE)" if frozen else ""
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN{freeze}") as copy:  # type: ignore[union-attr]
        copy.write(data)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
NULL = type(None)


def copy_text(columns: Sequence[list[object]]) -> bytes:
    """Rows given by column (text, numbers, flags, bytes or None) in PostgreSQL's COPY text format, built a
    column at a time with a few C calls each rather than a Python call per value: a process that has no
    connection (a parsing worker) prepares them, and the one with the connection only sends the bytes."""
    if not columns or not columns[0]:
        return b""
    texts = [_copy_column(column) for column in columns]
    return ("\n".join(map("\t".join, zip(*texts, strict=True))) + "\n").encode()


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


SCRATCH_SAMPLE: Final = 10  # statistics target for scratch tables, whose plans need sizes: 3,000 sampled rows
BULK_ROWS: Final = 10_000  # rows below which PostgreSQL's per-row foreign-key checks stay cheaper than DDL
BULK_SHARE: Final = 0.1  # the share of the table's rows an insert must add for one validation to be cheaper
LOCK_PATIENCE: Final = 2.0  # seconds of asking for the tables before settling for per-row checks
LOCK_NOT_AVAILABLE: Final = "55P03"


@contextmanager
def checked_once(conn: Connection, tables: Sequence[str], *, adding: int) -> Iterator[None]:
    """On PostgreSQL, a bulk insert into ``tables`` with their foreign keys checked, and their secondary
    indexes built, once each.

    PostgreSQL checks a foreign key with a trigger per inserted row (a look-up and a row lock written to the
    WAL each): half of a city's programme run. An index whose key arrives in random order (a reference
    number, a resident code) takes a b-tree descent per row, two to three times what sorting the whole table
    once costs: most of what was left. Its manual ("Populating a Database") drops both for the load and adds them
    back, which validates each key with one set-based query and builds each index with one sort.
    Here they are dropped and re-added, with their definitions as the catalog holds them, in the caller's
    transaction: a violation (a foreign key, or a duplicate under a unique index) fails the re-add and with it
    the whole transaction, so nothing unchecked is ever committed, and no other transaction ever sees the
    tables without them. The primary keys and the indexes a foreign key relies on stay.
    Only for a bulk insert (``adding`` rows many, and a tenth of the first table's rows or more), since a
    validation or a build reads every row of the table; only when the tables can be had at once (see
    :func:`_lock_at_once`). Otherwise, and on SQLite, the constraints stay and check each row.
    """
    if is_sqlite(conn) or adding < max(BULK_ROWS, BULK_SHARE * _estimated_rows(conn, tables[0])):
        yield
        return
    keys = _catalog(
        conn,
        "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid),"
        " confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid::regclass::text IN :tables ORDER BY conname",
        tables,
    )
    taken = [_constraint(table, name, definition) for table, name, definition, _ in keys]
    taken += _secondary_indexes(conn, tables)
    locked = sorted({*tables} | {referenced for *_, referenced in keys})
    if not taken or not _lock_at_once(conn, locked):
        yield
        return
    with conn.begin_nested():  # a failure inside undoes the inserts and the drops, even for a caller that goes on
        for undone in taken:
            conn.exec_driver_sql(undone.drop)
        yield
        _make_again(conn, taken[::-1])  # the indexes first, so each key is checked with them in place


@contextmanager
def keys_built_after(conn: Connection, tables: Sequence[str]) -> Iterator[None]:
    """Empty PostgreSQL tables loaded in bulk, their primary keys and indexes built afterwards with one sort
    each (the manual's "Populating a Database"), in the caller's transaction, which must hold the tables alone.

    The tables are emptied again (``TRUNCATE``), which lets the load write its rows frozen (:func:`copy_in`);
    a table that holds a row is refused, never emptied.
    A row-by-row b-tree descent per key costs more than the sort. A key loaded twice fails its build, and the
    block with :class:`KeyHeldTwice`: the builds run in one PL/pgSQL block that catches PostgreSQL's own error,
    whose text (in the server's log too) would hold the key's value, and raises one that names nothing. Looking
    for duplicates beforehand would sort every table once more. No foreign key may point at the tables (the
    ``TRUNCATE`` refuses them). On SQLite everything stays.
    """
    if is_sqlite(conn):
        yield
        return
    keys = _catalog(
        conn,
        "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'p' AND conrelid::regclass::text IN :tables ORDER BY 2",
        tables,
    )
    taken = [_constraint(table, name, definition) for table, name, definition in keys]
    taken += _secondary_indexes(conn, tables)
    if any(conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() for table in tables):
        raise StoreError("a bulk load with its keys built afterwards is for empty tables only")
    for undone in taken:
        conn.exec_driver_sql(undone.drop)
    conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)}")
    yield
    try:
        _make_again(conn, taken)
    except IntegrityError:
        raise KeyHeldTwice("a key loaded in bulk is held twice") from None


def _make_again(conn: Connection, taken: Sequence[_TakenOff]) -> None:
    """Constraints and indexes made again in one PL/pgSQL block. A row that breaks one fails the block with an
    error of the same class that names nothing: PostgreSQL's own would hold the row's value, and the server
    writes it to its log."""
    if not taken:
        return
    makes = "; ".join(undone.make for undone in taken)
    conn.exec_driver_sql(
        f"DO $$ BEGIN {makes}; EXCEPTION"
        " WHEN unique_violation THEN RAISE EXCEPTION 'a key held twice' USING ERRCODE = 'unique_violation';"
        " WHEN foreign_key_violation THEN RAISE EXCEPTION 'a reference to no row'"
        " USING ERRCODE = 'foreign_key_violation'; END $$"
    )


@dataclass(frozen=True)
class _TakenOff:
    """A constraint or an index dropped for a load: the statements that drop it and make it again."""

    drop: str
    make: str


def _constraint(table: str, name: str, definition: str) -> _TakenOff:
    return _TakenOff(
        f"ALTER TABLE {table} DROP CONSTRAINT {name}", f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
    )


def _catalog(conn: Connection, sql: str, tables: Sequence[str]) -> Sequence[Row]:
    """The rows of a query of PostgreSQL's catalog about ``tables`` (``:tables`` in it)."""
    return conn.execute(text(sql).bindparams(bindparam("tables", expanding=True)), {"tables": list(tables)}).all()


def _secondary_indexes(conn: Connection, tables: Sequence[str]) -> list[_TakenOff]:
    """The indexes of ``tables`` other than their primary keys and those a foreign key points at (a unique
    constraint as the constraint it is, so it keeps its name and its kind)."""
    rows = _catalog(
        conn,
        "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, quote_ident(c.conname),"
        " pg_get_constraintdef(c.oid), pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
        " AND c.contype IN ('u', 'p', 'x')"
        " WHERE i.indrelid::regclass::text IN :tables AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)"
        " ORDER BY 2",
        tables,
    )
    return [
        _constraint(table, name, definition) if name is not None else _TakenOff(f"DROP INDEX {index}", create)
        for table, index, name, definition, create in rows
    ]


def _lock_at_once(conn: Connection, tables: Sequence[str]) -> bool:
    """Lock ``tables`` for the rest of the transaction (the ``ALTER``s need them alone: their readers wait
    until it ends), or say it could not within :data:`LOCK_PATIENCE`.

    Never waits while holding some of them (``NOWAIT``, released by a savepoint and tried again), so it
    cannot deadlock with a transaction that holds one of them and waits for another.
    """
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE NOWAIT")
            return True
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _estimated_rows(conn: Connection, table: str) -> float:
    """The planner's estimate of a PostgreSQL table's rows (-1 before it was first analyzed, as 0 here)."""
    estimate = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table})
    return max(0.0, estimate.scalar_one())
