"""A home: created once, private, never overwritten; the CLI's version and usage errors."""

from __future__ import annotations

import dataclasses
import stat
import tomllib
from pathlib import Path

import pytest

from civicseal import __version__
from civicseal.cli import run
from civicseal.cseal import key_id
from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.keys.trust import load_trusted
from civicseal.store.errors import StoreError
from civicseal.store.home import CONTACT_KEYS, Contact, Home, default_config


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


def test_init_names_the_city_in_any_script_and_writes_an_empty_contact_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = str(tmp_path / "city")
    assert run(["init", "--home", where, "--issuer", "尼崎市"]) == 1
    refusal = capsys.readouterr().err
    assert "--issuer (e.g. amagasaki)" in refusal and "--issuer-name (e.g. 尼崎市)" in refusal
    assert "\n" not in refusal.strip() and not Path(where).exists()
    assert run(["init", "--home", where, "--issuer", "amagasaki", "--issuer-name", " 尼崎市 "]) == 0
    assert "尼崎市 (issuer amagasaki)" in capsys.readouterr().out
    config = Home(Path(where)).config
    assert (config.issuer, config.issuer_name, config.issuer_display) == ("amagasaki", "尼崎市", "尼崎市")
    assert config.contact == Contact() and config.contact.empty_keys() == CONTACT_KEYS
    written = tomllib.loads((Path(where) / "config.toml").read_text(encoding="utf-8"))
    assert written["contact"] == dict.fromkeys(CONTACT_KEYS, "")
    with pytest.raises(StoreError, match="display name"):
        default_config("amagasaki", "尼崎市\n総務局")


def test_a_config_written_before_display_names_still_loads(tmp_path: Path) -> None:
    home = init_home(tmp_path / "old", issuer="amagasaki")
    home.config_path.write_text(
        'issuer = "amagasaki"\nreturns_address = "兵庫県尼崎市東七松町1丁目23-1"\nreturns_postcode = "660-8501"\n',
        encoding="utf-8",
    )
    config = Home(home.path).config
    assert config.issuer_display == "amagasaki" and config.contact.empty_keys() == CONTACT_KEYS
    filled = dataclasses.replace(
        config, contact=Contact('尼崎市 "個人情報" 担当', "住所", "06-0000-0000", "平日", "https://x.jp/")
    )
    home.write_config(filled)
    assert Home(home.path).config == filled  # quotes and Japanese survive the round trip
    home.config_path.write_bytes('[contact]\ndepartment = "総務局"\n'.encode("cp932"))
    with pytest.raises(StoreError, match="not UTF-8; save it as UTF-8"):
        _ = Home(home.path).config
