"""The civicseal home: configuration, the city's keys and (by default) the SQLite store, in one folder.

Loss of the home is loss of the keys, so the key folder is 0700 and its files 0600.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from civicseal.store.engine import database_url, make_engine
from civicseal.store.errors import StoreError
from civicseal.store.files import atomic_writer

HOME_ENV = "CIVICSEAL_HOME"
DEFAULT_HOME = Path("civicseal-home")
CONFIG_FILE = "config.toml"
ISSUER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def resolve_home(home: Path | None) -> Path:
    return (home or Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)).absolute()


@dataclass(frozen=True)
class Config:
    issuer: str
    returns_address: str
    returns_postcode: str
    display_name: str = ""  # what people read (尼崎市); the issuer name is a slug

    def to_toml(self) -> str:
        shown = f'display_name = "{self.display_name}"\n' if self.display_name else ""
        return shown + (
            f'issuer = "{self.issuer}"\n'
            "# Canary records are addressed here: a letter that arrives means a package was misused.\n"
            f'returns_address = "{self.returns_address}"\n'
            f'returns_postcode = "{self.returns_postcode}"\n'
        )


def default_config(issuer: str) -> Config:
    if not ISSUER_NAME.fullmatch(issuer):
        raise StoreError("issuer name: letters, digits, '-' and '_' only, at most 64 characters")
    return Config(
        issuer=issuer, returns_address="兵庫県尼崎市東七松町1丁目23-1 個人情報保護担当", returns_postcode="660-8501"
    )


class Home:
    """Paths and handles of one home; nothing is opened until it is used."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = resolve_home(path)

    @property
    def keys(self) -> Path:
        return self.path / "keys"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def exists(self) -> bool:
        return self.config_path.exists()

    def require(self) -> None:
        if not self.exists():
            raise StoreError(f"{self.path}: not a civicseal home (run `civicseal init` first)")

    @cached_property
    def config(self) -> Config:
        self.require()
        data = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        return Config(
            **{k: data[k] for k in ("issuer", "returns_address", "returns_postcode")},
            display_name=data.get("display_name", ""),
        )

    def write_config(self, config: Config) -> None:
        with atomic_writer(self.config_path, text=True) as f:
            f.write(config.to_toml())

    @cached_property
    def engine(self) -> Engine:
        self.require()
        return make_engine(database_url(self.path))
