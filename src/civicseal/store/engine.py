"""Engines and transactions for the embedded SQLite store and for PostgreSQL.

SQLite runs in WAL mode with a 10 s busy timeout. A :func:`transaction` (a writer) begins IMMEDIATE, so it
waits for the write lock up front instead of failing half-way through; a plain connection (a reader)
begins DEFERRED and, in WAL mode, never waits for a writer and never blocks one. Work that must land
whatever else runs (a revocation, an unlock attempt and its log row) goes through :func:`write_patiently`,
which keeps asking for the lock for a while and then refuses clearly instead of failing inside.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from civicseal.store.errors import StoreBusy

T = TypeVar("T")

DATABASE_URL_ENV = "CIVICSEAL_DATABASE_URL"
SQLITE_FILE = "civicseal.db"
POOL_SIZE: Final = 16  # connections a process keeps open on PostgreSQL; the API works in no more at once
TRUSTED_FOR: Final = 1.0  # seconds a connection back in the pool is handed out again without a ping
BUSY_TIMEOUT: Final = 10.0  # seconds SQLite itself waits for the write lock, per attempt
PATIENCE: Final = 60.0  # seconds write_patiently keeps trying before it refuses
_WRITER: Final = "civicseal_writer"  # execution option: this connection's transactions write


def database_url(home: Path) -> str:
    """The store of a home: PostgreSQL when configured, else the SQLite file inside the home."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home / SQLITE_FILE}"


def make_engine(url: str, *, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    """Statement parameters are hidden from every database error: they may be personal data."""
    if url.startswith("sqlite"):
        from civicseal.store.driver import sqlite3

        engine = create_engine(url, module=sqlite3, connect_args={"timeout": busy_timeout}, hide_parameters=True)
        _configure_sqlite(engine, busy_timeout)
        return engine
    # Connections beyond the pool's size are closed when returned: a server busier than that would open a new
    # one (a PostgreSQL backend) for most requests, which cost more CPU than the request itself. Last in,
    # first out: a quiet server keeps reusing its few warm connections (cycling through all sixteen doubled
    # the paced look-up's median and tripled its p99 in bench/contact.py).
    engine = create_engine(url, pool_size=POOL_SIZE, pool_use_lifo=True, hide_parameters=True)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection before handing it out only when it has been idle (or is new): one that was in use a
    moment ago is alive, and a ping on every checkout was a round trip, two or three per look-up. A
    connection the database dropped (restart, terminated backend) is replaced, never handed out."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record: ConnectionPoolEntry) -> None:  # type: ignore[no-untyped-def]
        record.info["returned"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection, record: ConnectionPoolEntry, _proxy) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("returned", -TRUSTED_FOR) < TRUSTED_FOR:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the connection failed its ping") from exc


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: a city's indexes stay in memory while they grow
        cursor.execute("PRAGMA temp_store=MEMORY")  # the programme run's staging tables
        cursor.execute("PRAGMA secure_delete=ON")  # what a row held before it changed does not linger in free pages
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITER) else "BEGIN")


def is_sqlite(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "sqlite"


def bytewise(conn: Connection) -> str:
    """The collation clause that compares strings byte by byte, as SQLite always does.

    For codes and keys made of digits and letters, not words: PostgreSQL's default collation follows the
    database's locale (``strcoll`` for each comparison, a fifth of a programme run's aggregate), and
    ties broken in locale order could differ between the two stores.
    """
    return "" if is_sqlite(conn) else ' COLLATE "C"'


@contextmanager
def one_read(engine: Engine) -> Iterator[Connection]:
    """A connection for a single reading statement. On PostgreSQL it runs in autocommit: no BEGIN and ROLLBACK
    round trips around the statement (two of the four an API request's token check cost, ping included)."""
    with engine.connect() as conn:
        if not is_sqlite(conn):
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One atomic unit of work that writes: everything in it is committed together or not at all.

    On SQLite, a write lock not obtained within the busy timeout is :class:`StoreBusy` (retry), never an
    internal error.
    """
    with _busy_refused(engine), engine.connect() as conn, writing(conn):
        yield conn


@contextmanager
def writing(conn: Connection) -> Iterator[Connection]:
    """A :func:`transaction` on a connection the caller keeps open across several transactions (its temporary
    tables live on between them): a long job reads in :func:`reading` and writes only at the end, briefly."""
    conn.execution_options(**{_WRITER: True})  # in place: SQLite begins IMMEDIATE
    try:
        with _busy_refused(conn), conn.begin():
            yield conn
    finally:
        conn.execution_options(**{_WRITER: False})


@contextmanager
def _busy_refused(bind: Connection | Engine) -> Iterator[None]:
    """SQLite's write lock not obtained within the busy timeout: :class:`StoreBusy` (retry), never an internal
    error."""
    try:
        yield
    except OperationalError as exc:
        if not (is_sqlite(bind) and _is_lock_timeout(exc)):
            raise
        raise StoreBusy("the store is busy (another job holds its write lock): try again when it ends") from None


@contextmanager
def reading(conn: Connection) -> Iterator[Connection]:
    """A read transaction (a consistent snapshot) that takes no write lock: SQLite begins DEFERRED, so writers
    go on while it reads; writes to the connection's own temporary tables are allowed."""
    conn.execution_options(**{_WRITER: False})
    with conn.begin():
        yield conn


def _is_lock_timeout(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def write_patiently(
    engine: Engine, work: Callable[[Connection], T], *, patience: float = PATIENCE, what: str = "this"
) -> T:
    """Run ``work`` in a :func:`transaction`, retrying while SQLite's write lock is held by a long job.

    PostgreSQL locks rows, not the file, so there a writer simply waits for the rows it needs. On SQLite
    a long job holding the file's write lock makes ``BEGIN IMMEDIATE`` give up after the busy timeout;
    this tries again until ``patience`` runs out, then raises :class:`StoreBusy`, never an internal error.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            with transaction(engine) as conn:
                return work(conn)
        except StoreBusy:
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"the store stayed busy for {patience:.0f} s (another job holds its write lock);"
                    f" {what} was not recorded: try again when that job ends"
                ) from None
            time.sleep(0.05)
