"""Every test that touches the store runs twice: on an embedded SQLite file and on the PostgreSQL server
at 127.0.0.1:5432 (user postgres, trust), in a database each test session creates and drops."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.store.engine import DATABASE_URL_ENV
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home

PG_ADMIN = os.environ.get("CIVICSEAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_url(admin: str, name: str) -> str:
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point CIVICSEAL_DATABASE_URL at a fresh database of the backend (unset for SQLite)."""
    if request.param == "sqlite":
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        yield "sqlite"
        return
    name = f"civicseal_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(DATABASE_URL_ENV, _pg_url(PG_ADMIN, name))
    try:
        yield "postgresql"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def home(backend: str, tmp_path: Path) -> Iterator[Home]:
    """A fresh civicseal home on the backend under test."""
    created = init_home(tmp_path / "home")
    yield created
    created.engine.dispose()


@pytest.fixture
def cipher(home: Home) -> FieldCipher:
    return load_city_keys(home.keys).field_cipher()
