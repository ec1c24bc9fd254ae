"""Every SQLite connection of civicseal goes through one library (`store.driver`), a current one where it can."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from civicseal.store.bulk import copy_in, copy_text, insert_rows, sqlite_insert
from civicseal.store.driver import sqlite3
from civicseal.store.home import Home

ROOT = Path(__file__).resolve().parents[1]
OWN_IMPORT = re.compile(r"^\s*(import sqlite3|from sqlite3 )", re.M)


def test_nothing_but_the_driver_imports_sqlite3() -> None:
    """Two SQLite libraries with one file open in one process would drop each other's locks."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "driver.py" and OWN_IMPORT.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_store_opens_through_the_driver(home: Home) -> None:
    with home.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            return
        assert isinstance(conn.connection.driver_connection, sqlite3.Connection)
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1
        version = tuple(int(part) for part in conn.exec_driver_sql("SELECT sqlite_version()").scalar_one().split("."))
    if sys.platform == "linux" and platform.machine() == "x86_64":  # where pysqlite3-binary has a wheel
        assert version >= (3, 51)


def test_sqlite_insert_stores_what_it_was_given() -> None:
    """Flags as integers, bytes as bytearrays and NULLs as empty values turned back by the statement are
    stored as the values given; a column holding empty values of its own keeps its NULLs as they are."""
    columns: list[list[object]] = [
        [1, 2, 3, 4],
        [b"\x00a", None, b"\xff", None],
        [True, False, True, False],
        ["x", None, "山田", "y"],
        ["", None, "z", ""],  # an empty text of its own
        [None, None, None, None],
        [7, None, 8, None],
        [b"", None, b"q", b""],  # an empty blob of its own
    ]
    statement, rows = sqlite_insert("t", [f"c{i}" for i in range(len(columns))], columns)
    assert statement.count("NULLIF") == 3  # blobs, texts, all NULLs; not integers nor columns with empties
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(len(columns)))})")
    conn.executemany(statement, rows)
    stored = conn.execute("SELECT * FROM t ORDER BY c0").fetchall()
    assert stored == list(zip(*columns, strict=True))
    assert [type(v) for v in stored[0]] == [int, bytes, int, str, str, type(None), int, bytes]
    conn.close()


def _copy_row(row: tuple[object, ...]) -> str:
    """COPY text of one row, value by value, as PostgreSQL's manual spells the format."""
    escapes = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    cells = [
        "\\N"
        if v is None
        else "\\\\x" + v.hex()
        if isinstance(v, bytes)
        else "".join(escapes.get(c, c) for c in v)
        if isinstance(v, str)
        else str(v)
        for v in row
    ]
    return "\t".join(cells) + "\n"


KINDS = [  # a column holds one kind of value, and NULLs
    st.text(alphabet=st.sampled_from("a山\\\t\n\r "), max_size=4),
    st.integers(-5, 5),
    st.booleans(),
    st.binary(max_size=3),
]
COLUMNS = st.lists(st.sampled_from(KINDS).map(lambda kind: st.none() | kind), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(COLUMNS.flatmap(lambda kinds: st.lists(st.tuples(*kinds), min_size=1, max_size=5)))
def test_copy_text_is_the_rows_in_copy_format(rows: list[tuple[object, ...]]) -> None:
    """Built a column at a time and joined in one pass, it is what formatting each row would give: empty
    values, a one-column row of an empty text, escapes and NULLs included."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    assert copy_text(columns) == "".join(map(_copy_row, rows)).encode()


def test_copy_text_round_trips_through_postgresql(home: Home) -> None:
    columns: list[list[object]] = [
        [1, 2, 3],
        ["a\tb\\c", "", None],
        ["改行\nと\r", None, ""],
        [True, None, False],
        [b"\x00\\", None, b""],
    ]
    with home.engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            return
        conn.execute(text("CREATE TEMP TABLE t (n INTEGER, a TEXT, b TEXT, f BOOLEAN, x BYTEA)"))
        copy_in(conn, "t", ("n", "a", "b", "f", "x"), copy_text(columns))
        stored = [tuple(row) for row in conn.execute(text("SELECT * FROM t ORDER BY n"))]
    assert stored == list(zip(*columns, strict=True))


def test_insert_rows_stores_each_row_as_given_on_both_stores(home: Home) -> None:
    """Rows go by their columns (one bulk path per store): escapes, bytes, flags and NULLs kept; no rows, no
    statement."""
    rows = [(1, "山田\t太郎", b"\x00\\", True, None), (2, None, None, False, "x")]
    with home.engine.begin() as conn:
        blob = "BLOB" if conn.dialect.name == "sqlite" else "BYTEA"
        conn.execute(text(f"CREATE TEMP TABLE r (n INTEGER, a TEXT, b {blob}, f BOOLEAN, c TEXT)"))
        insert_rows(conn, "r", ("n", "a", "b", "f", "c"), iter(rows))
        insert_rows(conn, "r", ("n", "a", "b", "f", "c"), iter([]))
        stored = [tuple(row) for row in conn.execute(text("SELECT n, a, b, f, c FROM r ORDER BY n"))]
    assert [(n, a, None if b is None else bytes(b), bool(f), c) for n, a, b, f, c in stored] == rows
