"""The civicseal home: configuration, the city's keys and (by default) the SQLite store, in one folder.

Loss of the home is loss of the keys, so the key folder is 0700 and its files 0600.
"""

from __future__ import annotations

import json
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
class CanaryAddress:
    postcode: str
    address: str


@dataclass(frozen=True)
class Config:
    issuer: str
    canary_addresses: tuple[CanaryAddress, ...] = ()

    def to_toml(self) -> str:
        addresses = "".join(
            f"  {{ postcode = {json.dumps(a.postcode, ensure_ascii=False)},"
            f" address = {json.dumps(a.address, ensure_ascii=False)} }},\n"
            for a in self.canary_addresses
        )
        return (
            f'issuer = "{self.issuer}"\n'
            "# Canary households live at these addresses, one per household. Replace them with addresses the city\n"
            "# controls (mail to them reaches the city), written as residents' addresses are: a letter that arrives\n"
            "# there, or a call quoting one, means a package was misused.\n"
            f"canary_addresses = [\n{addresses}]\n"
        )


def default_config(issuer: str, canary_addresses: tuple[CanaryAddress, ...] = ()) -> Config:
    if not ISSUER_NAME.fullmatch(issuer):
        raise StoreError("issuer name: letters, digits, '-' and '_' only, at most 64 characters")
    return Config(issuer=issuer, canary_addresses=canary_addresses)


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
        try:
            listed = data.get("canary_addresses", ())
            addresses = tuple(CanaryAddress(str(a["postcode"]), str(a["address"])) for a in listed)
        except (KeyError, TypeError):
            raise StoreError(f"{self.config_path}: canary_addresses: each needs a postcode and an address") from None
        return Config(issuer=data["issuer"], canary_addresses=addresses)

    def write_config(self, config: Config) -> None:
        with atomic_writer(self.config_path, text=True) as f:
            f.write(config.to_toml())

    @cached_property
    def engine(self) -> Engine:
        self.require()
        return make_engine(database_url(self.path))
