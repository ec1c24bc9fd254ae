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

from civicseal.store.engine import DATABASE_URL_ENV, database_url, make_engine
from civicseal.store.errors import StoreError
from civicseal.store.files import atomic_writer

HOME_ENV = "CIVICSEAL_HOME"
DEFAULT_HOME = Path("civicseal-home")
CONFIG_FILE = "config.toml"
ANCHORS_FILE = "anchors.jsonl"  # default place of the audit anchors; config.toml's anchors_file moves it
ISSUER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
KEY_SERVICE_ROLE = "key-service"  # config.toml's ``role`` of a home made by ``keys split-service``


def resolve_home(home: Path | None) -> Path:
    return (home or Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)).absolute()


@dataclass(frozen=True)
class Config:
    issuer: str
    returns_address: str
    returns_postcode: str

    def to_toml(self) -> str:
        return (
            f'issuer = "{self.issuer}"\n'
            "# Canary records are addressed here: a letter that arrives means a package was misused.\n"
            f'returns_address = "{self.returns_address}"\n'
            f'returns_postcode = "{self.returns_postcode}"\n'
            "# Signed audit anchors; put them where this machine's administrator cannot rewrite them:\n"
            f'# anchors_file = "/mnt/worm/civicseal-anchors.jsonl"  (default: {ANCHORS_FILE} in the home)\n'
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
    def settings(self) -> dict[str, object]:
        """config.toml as read, for settings that not every home has."""
        self.require()
        return tomllib.loads(self.config_path.read_text(encoding="utf-8"))

    @cached_property
    def config(self) -> Config:
        data = self.settings
        return Config(**{k: data[k] for k in ("issuer", "returns_address", "returns_postcode")})  # type: ignore[arg-type]

    @property
    def anchors_path(self) -> Path:
        """Where ``audit anchor`` appends: config.toml's ``anchors_file`` (relative to the home), else the default."""
        path = Path(str(self.settings.get("anchors_file") or ANCHORS_FILE))
        return path if path.is_absolute() else self.path / path

    def write_config(self, config: Config) -> None:
        with atomic_writer(self.config_path, text=True) as f:
            f.write(config.to_toml())

    @property
    def is_key_service(self) -> bool:
        """A key-service home: the unlock key and the store's location, none of the city's other keys."""
        return self.settings.get("role") == KEY_SERVICE_ROLE

    @property
    def database_url(self) -> str:
        """``CIVICSEAL_DATABASE_URL``, else the store a key-service home names, else the SQLite file here."""
        named = self.settings.get("database_url")
        if named and not os.environ.get(DATABASE_URL_ENV):
            return str(named)
        return database_url(self.path)

    @cached_property
    def engine(self) -> Engine:
        self.require()
        return make_engine(self.database_url)
