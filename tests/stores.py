"""The test session's stores: PostgreSQL databases, the freshly made home each test copies, and saved states
of a home that several tests build the same way (a synthetic city with its programme run).

Making a home runs every migration, about 2 s on PostgreSQL, and several hundred tests take one; the copy
(folder copied, database cloned with CREATE DATABASE … TEMPLATE) is the same home for a tenth of that. A
city imported and run is saved the first time a test builds it and laid over the next test's home, which
must be a fresh copy of the same home (same keys, nothing written yet): otherwise the test builds it.

Databases are dropped many at once, while later tests run: each DROP DATABASE makes PostgreSQL 15
checkpoint (one to three seconds on a busy machine) and checkpoints asked for together are one, so dropping
as each test ends cost more than the tests themselves.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from civicseal.homes import init_home
from civicseal.schema import metadata
from civicseal.store.driver import sqlite3
from civicseal.store.engine import DATABASE_URL_ENV, SQLITE_FILE
from civicseal.store.home import Home

PG_ADMIN = os.environ.get("CIVICSEAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DROPPING_CONNECTIONS = 16  # well under max_connections (100), which other sessions share


def pg_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql)


def database_name() -> str:
    return f"civicseal_test_{uuid.uuid4().hex[:12]}"


class Dropper:
    """Drops the session's databases over parallel connections, a batch at a time in the background."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(DROPPING_CONNECTIONS, thread_name_prefix="drop-test-database")
        self.unused: list[str] = []  # no test uses them any more
        self.at_end: list[str] = []  # tests clone them until the session ends
        self.dropping: list[Future[None]] = []

    def drop(self, name: str) -> None:
        """Drop a database no test will use again, with the next batch."""
        self.unused.append(name)
        if len(self.unused) >= DROPPING_CONNECTIONS:
            self._submit(self.unused)
            self.unused = []

    def drop_at_end(self, name: str) -> None:
        self.at_end.append(name)

    def close(self) -> None:
        self._submit(self.unused + self.at_end)
        self.pool.shutdown()
        for dropped in self.dropping:
            dropped.result()  # a drop that failed fails the session

    def _submit(self, names: list[str]) -> None:
        self.dropping += [
            self.pool.submit(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)') for name in names
        ]


def _backend() -> str:
    return "postgresql" if os.environ.get(DATABASE_URL_ENV) else "sqlite"


def _row_counts(home: Home) -> tuple[int, ...]:
    with home.engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table)).scalar_one() for table in metadata.sorted_tables
        )


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup: safe while another connection has the target open, unlike replacing files."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _database_of_env() -> str:
    return os.environ[DATABASE_URL_ENV].rsplit("/", 1)[1]


@dataclass(frozen=True)
class Saved:
    files: Path  # a copy of the folder the build wrote
    store: Path | str  # SQLite: a copy of the store; PostgreSQL: the database to clone


class PreparedHomes:
    """The session's freshly made home of each store, made on first use, and saved states built on it."""

    def __init__(self, base: Path, dropper: Dropper) -> None:
        self.base = base
        self.dropper = dropper
        self.template_database = database_name()  # the PostgreSQL home's database, cloned per test
        self.made: set[str] = set()
        self.fresh: dict[str, tuple[tuple[int, ...], dict[str, bytes]]] = {}  # row counts and key files
        self.saved: dict[tuple[str, str], Saved] = {}  # by (backend, state)

    def folder(self, backend: str) -> Path:
        """The home's folder, made now if this is the first test on ``backend``."""
        folder = self.base / backend
        if backend not in self.made:
            with pytest.MonkeyPatch.context() as env:
                if backend == "sqlite":
                    env.delenv(DATABASE_URL_ENV, raising=False)
                else:
                    pg_admin(f'CREATE DATABASE "{self.template_database}"')
                    self.dropper.drop_at_end(self.template_database)
                    env.setenv(DATABASE_URL_ENV, pg_url(self.template_database))
                home = init_home(folder)
                self.fresh[backend] = (_row_counts(home), _files(home.keys))
                home.engine.dispose()  # no connection may stay open to a database PostgreSQL clones
            self.made.add(backend)
        return folder

    def built(self, home: Home, state: str, files: Path, build: Callable[[], None]) -> None:
        """Bring a fresh ``home`` (and the folder ``files``) to what ``build`` makes of them.

        ``build`` may read only the store, the keys and ``files``. The first time it runs; later its result is
        copied, when ``home`` is a fresh copy of the prepared home (else ``build`` runs again).
        """
        backend = _backend()
        if backend not in self.made or self.fresh[backend] != (_row_counts(home), _files(home.keys)):
            build()
            return
        saved = self.saved.get((backend, state))
        if saved is None:
            build()
            self._save(home, backend, state, files)
        elif self._restore(home, backend, saved):
            shutil.copytree(saved.files, files)
        else:
            build()

    def _save(self, home: Home, backend: str, state: str, files: Path) -> None:
        folder = self.base / f"saved-{backend}-{state}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        home.engine.dispose()
        store: Path | str
        if backend == "sqlite":
            store = folder / SQLITE_FILE
            _copy_sqlite(home.path / SQLITE_FILE, store)
        else:
            store = database_name()
            try:
                pg_admin(f'CREATE DATABASE "{store}" TEMPLATE "{_database_of_env()}"')
            except psycopg.errors.ObjectInUse:  # another engine of the test holds a connection: not saved
                return
            self.dropper.drop_at_end(store)
        shutil.copytree(files, folder / "files")
        self.saved[(backend, state)] = Saved(folder / "files", store)

    def _restore(self, home: Home, backend: str, saved: Saved) -> bool:
        home.engine.dispose()
        if isinstance(saved.store, Path):
            _copy_sqlite(saved.store, home.path / SQLITE_FILE)
            return True
        name, replaced = _database_of_env(), database_name()
        try:  # a rename is no checkpoint, unlike a drop; the old database is dropped with the others
            pg_admin(f'ALTER DATABASE "{name}" RENAME TO "{replaced}"')
        except psycopg.errors.ObjectInUse:  # another engine of the test holds a connection
            return False
        self.dropper.drop(replaced)
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{saved.store}"')
        return True


# The session's prepared homes, for helpers called without fixtures (tests.cities); set by conftest.
session: PreparedHomes | None = None
