"""The SQLite libraries civicseal opens files with: a current SQLite for the store, Python's own for staging.

``sqlite3``, the store's: where a wheel exists (Linux on x86-64), ``pysqlite3-binary`` brings SQLite 3.51
in place of the one Python was linked with (Debian's 3.40, built without SQLite's lookaside allocator).
The programme run's aggregate over 460,517 residents took 0.32 s instead of 0.58 s, the whole
`programme run` 1.41 s instead of 1.79 s. Elsewhere Python's own module serves, with the same API.

``python_sqlite3``, Python's own module, for the import's parsing workers writing a staging file: it binds
a million NULLs, flags and ciphertexts cheaply, where pysqlite3's module looks each such value up among its
adapters with attribute look-ups that raise (staging a city's rows: 3.4 s of CPU against 4.4 s).

Never two libraries on one file in one process (each would release the other's POSIX locks): a worker opens
only its staging file, and the importing process opens that file only through its store connection.
"""

import sqlite3 as python_sqlite3

try:
    import pysqlite3.dbapi2 as sqlite3
except ImportError:  # pragma: no cover - no wheel for this platform: Python's own SQLite
    import sqlite3

__all__ = ["python_sqlite3", "sqlite3"]
