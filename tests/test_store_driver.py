"""Every SQLite connection of civicseal goes through one library (`store.driver`), a current one where it can."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

from civicseal.store.bulk import rows_of
from civicseal.store.driver import python_sqlite3, sqlite3
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


def test_rows_of_binds_what_it_was_given() -> None:
    """Bytes bound as bytearrays and flags as integers are stored as the same BLOBs and integers."""
    columns: list[list[object]] = [[1, 2, 3], [b"\x00a", None, b""], [True, False, True], ["x", None, "山田"]]
    rows = list(rows_of(columns))
    assert [type(v) for v in rows[0]] == [int, bytearray, int, str]
    for library in (sqlite3, python_sqlite3):
        conn = library.connect(":memory:")
        conn.execute("CREATE TABLE t (a, b, c, d)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        assert conn.execute("SELECT * FROM t ORDER BY a").fetchall() == list(zip(*columns, strict=True))
        conn.close()
