"""Every test that touches the store runs twice: on an embedded SQLite file and on the PostgreSQL server
at 127.0.0.1:5432 (user postgres, trust), in a database each test session creates and drops.

A test's `home` is a copy of one made by `init_home` once per store and session: its folder copied, its
PostgreSQL database cloned (CREATE DATABASE … TEMPLATE). Making a home runs every migration, about 2 s on
PostgreSQL, and several hundred tests take one; the copy is the same home for a tenth of that. The homes of
one run therefore share their keys, which no test can tell: each test has one `home`, and a test that needs
a second home makes it with `init_home` itself.

The session's PostgreSQL databases are dropped when it ends, many at once: each DROP DATABASE makes
PostgreSQL 15 checkpoint (one to three seconds on a busy machine), and checkpoints asked for at the same
time are one, so dropping as each test ends cost more than the tests themselves.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.store.engine import DATABASE_URL_ENV
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home

PG_ADMIN = os.environ.get("CIVICSEAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DROPPING_CONNECTIONS = 16  # well under max_connections (100), which other sessions share


def _pg_url(admin: str, name: str) -> str:
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql)


def _database_name() -> str:
    return f"civicseal_test_{uuid.uuid4().hex[:12]}"


class Dropper:
    """The session's databases, dropped by ``close`` over parallel connections."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def drop(self, name: str) -> None:
        self.names.append(name)

    def close(self) -> None:
        with ThreadPoolExecutor(DROPPING_CONNECTIONS) as pool:
            list(pool.map(lambda name: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), self.names))


class PreparedHomes:
    """The session's freshly made home of each store, made on first use, for tests to copy."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.template_database = _database_name()  # the PostgreSQL home's database, cloned per test
        self.made: set[str] = set()

    def folder(self, backend: str) -> Path:
        """The home's folder, made now if this is the first test on ``backend``."""
        folder = self.base / backend
        if backend not in self.made:
            with pytest.MonkeyPatch.context() as env:
                if backend == "sqlite":
                    env.delenv(DATABASE_URL_ENV, raising=False)
                else:
                    _pg_admin(f'CREATE DATABASE "{self.template_database}"')
                    env.setenv(DATABASE_URL_ENV, _pg_url(PG_ADMIN, self.template_database))
                # no connection may stay open to a database PostgreSQL clones
                init_home(folder).engine.dispose()
            self.made.add(backend)
        return folder


@pytest.fixture(scope="session")
def dropper() -> Iterator[Dropper]:
    dropping = Dropper()
    try:
        yield dropping
    finally:
        dropping.close()


@pytest.fixture(scope="session")
def prepared_homes(tmp_path_factory: pytest.TempPathFactory, dropper: Dropper) -> Iterator[PreparedHomes]:
    prepared = PreparedHomes(tmp_path_factory.mktemp("prepared-homes"))
    try:
        yield prepared
    finally:
        if "postgresql" in prepared.made:
            dropper.drop(prepared.template_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, prepared_homes: PreparedHomes, dropper: Dropper
) -> Iterator[str]:
    """Point CIVICSEAL_DATABASE_URL at a fresh database of the backend (unset for SQLite).

    On PostgreSQL the database is empty, or, for a test taking a `home`, a clone of the prepared home's.
    """
    if request.param == "sqlite":
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        yield "sqlite"
        return
    name = _database_name()
    if "home" in request.fixturenames:
        prepared_homes.folder("postgresql")
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{prepared_homes.template_database}"')
    else:
        _pg_admin(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(DATABASE_URL_ENV, _pg_url(PG_ADMIN, name))
    try:
        yield "postgresql"
    finally:
        dropper.drop(name)


@pytest.fixture
def home(backend: str, tmp_path: Path, prepared_homes: PreparedHomes) -> Iterator[Home]:
    """A fresh civicseal home on the backend under test (a copy of the session's, see above)."""
    path = tmp_path / "home"
    shutil.copytree(prepared_homes.folder(backend), path)
    created = Home(path)
    yield created
    created.engine.dispose()


@pytest.fixture
def cipher(home: Home) -> FieldCipher:
    return load_city_keys(home.keys).field_cipher()
