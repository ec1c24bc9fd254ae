"""The SQLite library every connection to a store or a staging file goes through, in every civicseal process.

Where a wheel exists (Linux on x86-64), ``pysqlite3-binary`` brings SQLite 3.51 in place of the one Python
was linked with (Debian's 3.40, built without SQLite's lookaside allocator): the programme run's aggregate
over 460,517 residents took 0.32 s instead of 0.58 s, the whole `programme run` 1.41 s instead of 1.79 s.
Elsewhere Python's own module serves, with the same API. Its module binds NULLs, flags and bytes slowly:
bulk rows go through :func:`civicseal.store.bulk.sqlite_insert`, which shapes them for it.

One library per process: two SQLite libraries with one file open in one process would each release the
other's POSIX locks, so nothing in civicseal imports ``sqlite3`` itself. ``python_sqlite3``, Python's own
module, is there for ``bench/register.py`` to time its reference on both.
"""

import sqlite3 as python_sqlite3

try:
    import pysqlite3.dbapi2 as sqlite3
except ImportError:  # pragma: no cover - no wheel for this platform: Python's own SQLite
    import sqlite3

__all__ = ["python_sqlite3", "sqlite3"]
