"""Least privilege: a key-service home holds the unlock key and the store's location, nothing else, and serves
unlocks from it; identities sealed under the master key before the split are re-wrapped; key material
never shows in a repr."""

from __future__ import annotations

import json
import os
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from civicseal.cli import run
from civicseal.clock import utcnow
from civicseal.keys.city import MASTER, SIGNING, load_city_keys, load_unlock_key
from civicseal.keys.client import fetch_package_identity
from civicseal.keys.errors import KeyMaterialError
from civicseal.keys.evidence import verify_evidence
from civicseal.keys.service import BackgroundServer, create_app
from civicseal.keys.split import LEGACY_IDENTITY_COLUMN
from civicseal.ledger.models import Package
from civicseal.store.engine import DATABASE_URL_ENV
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.test_keys import add_package, make_contractor


def _live_package(home: Home, cipher: FieldCipher, package_id: str) -> str:
    now = utcnow()
    return add_package(
        home,
        cipher,
        "alice",
        package_id,
        expires_at=now + timedelta(days=30),
        custody=(("created", now - timedelta(hours=1)),),
    )


def _unbound(cipher: FieldCipher, secret: str) -> bytes:
    """An identity as sealing stored it before 0010: AES-GCM under the master key, bound to the column only."""
    key_id, prefix = cipher._key_id, os.urandom(8)
    nonce = prefix + (0).to_bytes(4, "big")
    return key_id + nonce + cipher._aead[key_id].encrypt(nonce, secret.encode(), LEGACY_IDENTITY_COLUMN.encode())


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_the_split_home_holds_only_the_unlock_key_and_serves_from_it(
    home: Home, cipher: FieldCipher, tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    alice = make_contractor(home.engine, "alice")
    secret = _live_package(home, cipher, "pkg_split")
    legacy_secret = _live_package(home, cipher, "pkg_legacy")
    with home.engine.begin() as conn:  # as sealed before 0010: under the master key, not for the unlock key
        blob = _unbound(cipher, legacy_secret)
        conn.execute(update(Package).where(Package.id == "pkg_legacy").values(identity_enc=blob, identity_age=None))

    service_dir = tmp_path / "key-service-host"
    assert run(["keys", "split-service", "--out", str(service_dir), "--json", "--home", str(home.path)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["rewrapped"] == 1
    assert _files(service_dir) == {"config.toml", "keys/unlock.age", "keys/unlock.pub"}
    assert not (service_dir / "keys" / MASTER).exists() and not (service_dir / "keys" / SIGNING).exists()
    assert (service_dir / "keys").stat().st_mode & 0o777 == 0o700
    assert (service_dir / "keys" / "unlock.age").stat().st_mode & 0o777 == 0o600
    config = tomllib.loads((service_dir / "config.toml").read_text())
    assert config["role"] == "key-service"
    if backend == "sqlite":
        assert config["database_url"] == f"sqlite:///{home.path / 'civicseal.db'}"
    else:
        assert config["database_url"] == os.environ[DATABASE_URL_ENV]
    with home.engine.connect() as conn:
        enc, wrapped = conn.execute(
            select(Package.identity_enc, Package.identity_age).where(Package.id == "pkg_legacy")
        ).one()
    assert enc is None and wrapped is not None

    service_home = Home(service_dir)
    assert service_home.is_key_service
    with BackgroundServer(create_app(service_home)) as server:
        assert fetch_package_identity(server.url, "pkg_split", alice.token, alice.identity) == secret
        assert fetch_package_identity(server.url, "pkg_legacy", alice.token, alice.identity) == legacy_secret
    service_home.engine.dispose()
    assert verify_evidence(home).ok  # the service's attempts are in the city's chain


def test_split_refuses_a_folder_in_use(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("x")
    assert run(["keys", "split-service", "--out", str(used), "--home", str(home.path)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert _files(used) == {"notes.txt"}


def test_an_identity_copied_to_another_package_does_not_open(home: Home, cipher: FieldCipher) -> None:
    make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_a")
    add_package(home, cipher, "alice", "pkg_b")
    with home.engine.connect() as conn:
        a_wrapped = conn.execute(select(Package.identity_age).where(Package.id == "pkg_a")).scalar_one()
    unlock_key = load_unlock_key(home.keys)
    assert unlock_key.unwrap("pkg_a", a_wrapped).startswith("AGE-SECRET-KEY-1")
    with pytest.raises(KeyMaterialError, match="belongs to another package"):
        unlock_key.unwrap("pkg_b", a_wrapped)


def test_key_material_never_shows_in_repr(home: Home) -> None:
    keys = load_city_keys(home.keys)
    unlock_key = load_unlock_key(home.keys)
    master_hex = keys.master.hex()
    secret = (home.keys / "unlock.age").read_text().strip()
    for shown in (repr(keys), str(keys), repr(unlock_key), repr(keys.field_cipher())):
        assert master_hex not in shown and repr(keys.master) not in shown and secret not in shown
        assert "AGE-SECRET-KEY" not in shown
