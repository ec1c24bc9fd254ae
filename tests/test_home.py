"""A home: created once, private, never overwritten; the CLI's version and usage errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from civicseal import __version__
from civicseal.cli import run
from civicseal.cseal import key_id
from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.keys.trust import load_trusted
from civicseal.store.errors import StoreError
from civicseal.store.home import Home


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_private_keys_and_trusts_its_own_issuer(home: Home) -> None:
    assert _mode(home.path) == 0o700
    assert _mode(home.keys) == 0o700
    for name in ("master.key", "signing.key", "identity.age"):
        assert _mode(home.keys / name) == 0o600
    keys = load_city_keys(home.keys)
    assert set(load_trusted(home.path)) == {key_id(keys.signing.public_key())}


def test_init_never_overwrites_a_home(home: Home) -> None:
    before = (home.keys / "master.key").read_bytes()
    with pytest.raises(StoreError, match="exists there already"):
        init_home(home.path)
    assert (home.keys / "master.key").read_bytes() == before


def test_cli_init_keys_public_and_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = str(tmp_path / "city")
    assert run(["init", "--home", where, "--issuer", "amagasaki"]) == 0
    assert run(["init", "--home", where]) == 1
    assert "exists there already" in capsys.readouterr().err
    assert run(["keys", "public", "--home", where]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("amagasaki ed25519:")
    assert run(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert run(["programme", "run"]) == 2  # usage error: the name is missing
    assert run(["register", "import", str(tmp_path / "missing.csv"), "--home", str(tmp_path / "nowhere")]) == 1
