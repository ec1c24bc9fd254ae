"""Purposes, loaded once from purposes.toml: a field outside a purpose cannot be asked for."""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from civicseal.cseal import Mode
from civicseal.cseal.errors import SealError
from civicseal.ledger.fields import FIELDS, Category

PURPOSES_FILE = Path(__file__).with_name("purposes.toml")
SELECTIONS = ("entitled-households", "confirmed-with-account")
PAYLOADS = ("table", "zengin")


@dataclass(frozen=True)
class Purpose:
    name: str
    description: str
    description_ja: str
    fields: tuple[str, ...]
    selects: str
    canaries: bool
    mode: Mode
    max_validity: timedelta
    payload: str  # "table", or "zengin": a bank transfer file, made by payments

    @property
    def categories(self) -> tuple[Category, ...]:
        return tuple(dict.fromkeys(FIELDS[f].category for f in self.fields))

    def choose(self, fields: tuple[str, ...] | None) -> tuple[str, ...]:
        """The fields a package carries: all of the purpose's, or a subset — never one outside it."""
        if not fields:
            return self.fields
        outside = [f for f in fields if f not in self.fields]
        if outside:
            raise SealError(f"purpose {self.name} does not allow the field(s) {', '.join(outside)}")
        if "pseudonym" not in fields:
            fields = ("pseudonym", *fields)
        return tuple(f for f in self.fields if f in fields)


@cache
def purposes() -> dict[str, Purpose]:
    data = tomllib.loads(PURPOSES_FILE.read_text(encoding="utf-8"))
    loaded = {}
    for name, spec in data.items():
        unknown = [f for f in spec["fields"] if f not in FIELDS]
        payload_wrong = spec["format"] not in PAYLOADS or (spec["format"] == "zengin" and spec["canaries"])
        if unknown or spec["selects"] not in SELECTIONS or spec["fields"][0] != "pseudonym" or payload_wrong:
            raise SealError(f"purposes.toml: purpose {name} is not well formed")
        loaded[name] = Purpose(
            name=name,
            description=spec["description"],
            description_ja=spec["description_ja"],
            fields=tuple(spec["fields"]),
            selects=spec["selects"],
            canaries=bool(spec["canaries"]),
            mode=Mode(spec["mode"]),
            max_validity=timedelta(days=int(spec["max_days"])),
            payload=spec["format"],
        )
    return loaded


def get_purpose(name: str) -> Purpose:
    """A purpose by its name, or by its Japanese description as the commands print it (給付金の確認書の郵送)."""
    known = purposes()
    if name in known:
        return known[name]
    typed = unicodedata.normalize("NFKC", name).strip()
    for purpose in known.values():
        if unicodedata.normalize("NFKC", purpose.description_ja) == typed:
            return purpose
    raise SealError(f"no purpose named {name!r} (see `civicseal purpose list`)")
