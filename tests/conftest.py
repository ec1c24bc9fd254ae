"""Every test that touches the store runs twice: on an embedded SQLite file and on the PostgreSQL server
at 127.0.0.1:5432 (user postgres, trust), in a database each test session creates and drops.

A test's `home` is a copy of one home the session makes per store (see tests/stores.py): the homes of one
run therefore share their keys, which no test can tell, as each test has one `home` and a test that needs a
second home makes it with `init_home` itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from civicseal.keys.city import load_city_keys
from civicseal.store.engine import DATABASE_URL_ENV
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests import stores


@pytest.fixture(scope="session")
def prepared_homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stores.PreparedHomes]:
    dropper = stores.Dropper()
    stores.session = stores.PreparedHomes(tmp_path_factory.mktemp("prepared-homes"), dropper)
    try:
        yield stores.session
    finally:
        stores.session = None
        dropper.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, prepared_homes: stores.PreparedHomes
) -> Iterator[str]:
    """Point CIVICSEAL_DATABASE_URL at a fresh database of the backend (unset for SQLite).

    On PostgreSQL the database is empty, or, for a test taking a `home`, a clone of the prepared home's.
    """
    if request.param == "sqlite":
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        yield "sqlite"
        return
    name = stores.database_name()
    if "home" in request.fixturenames:
        prepared_homes.folder("postgresql")
        stores.pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{prepared_homes.template_database}"')
    else:
        stores.pg_admin(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(DATABASE_URL_ENV, stores.pg_url(name))
    try:
        yield "postgresql"
    finally:
        prepared_homes.dropper.drop(name)


@pytest.fixture
def home(backend: str, tmp_path: Path, prepared_homes: stores.PreparedHomes) -> Iterator[Home]:
    """A fresh civicseal home on the backend under test (a copy of the session's)."""
    path = tmp_path / "home"
    shutil.copytree(prepared_homes.folder(backend), path)
    created = Home(path)
    yield created
    created.engine.dispose()


@pytest.fixture
def cipher(home: Home) -> FieldCipher:
    return load_city_keys(home.keys).field_cipher()
