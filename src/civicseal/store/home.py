"""The civicseal home: configuration, the city's keys and (by default) the SQLite store, in one folder.

Loss of the home is loss of the keys, so the key folder is 0700 and its files 0600.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Final

from civicseal.store.errors import StoreError
from civicseal.store.files import atomic_writer

if TYPE_CHECKING:
    from sqlalchemy import Engine

HOME_ENV = "CIVICSEAL_HOME"
DEFAULT_HOME = Path("civicseal-home")
CONFIG_FILE = "config.toml"
ANCHORS_FILE = "anchors.jsonl"  # default place of the audit anchors; config.toml's anchors_file moves it
ISSUER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
KEY_SERVICE_ROLE = "key-service"  # config.toml's ``role`` of a home made by ``keys split-service``


def resolve_home(home: Path | None) -> Path:
    return (home or Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)).absolute()


CONTACT_KEYS: Final = ("department", "address", "telephone", "hours", "web")
MAX_DISPLAY_NAME: Final = 100


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, and non-ASCII stays readable."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Contact:
    """Whom a resident calls about a letter: printed on every letter, so all of it must be filled in."""

    department: str = ""
    address: str = ""
    telephone: str = ""
    hours: str = ""
    web: str = ""

    def empty_keys(self) -> tuple[str, ...]:
        return tuple(key for key in CONTACT_KEYS if not getattr(self, key).strip())


# How a city fills it in: shown in the written config.toml, and used by the sample letters and tests.
EXAMPLE_CONTACT: Final = Contact(
    department="尼崎市 総務局 個人情報保護担当",
    address="〒660-8501 兵庫県尼崎市東七松町1丁目23番1号",
    telephone="06-6489-6000",
    hours="平日 午前9時から午後5時30分まで",
    web="https://www.city.amagasaki.hyogo.jp/",
)


@dataclass(frozen=True)
class CanaryAddress:
    postcode: str
    address: str


@dataclass(frozen=True)
class Config:
    issuer: str
    issuer_name: str = ""  # homes made before display names have none: the slug stands in
    contact: Contact = field(default_factory=Contact)
    canary_addresses: tuple[CanaryAddress, ...] = ()

    @property
    def issuer_display(self) -> str:
        """What people read: the display name (尼崎市), else the slug."""
        return self.issuer_name or self.issuer

    def to_toml(self) -> str:
        contact = "".join(f"{key} = {_toml_string(getattr(self.contact, key))}\n" for key in CONTACT_KEYS)
        example = "".join(f"#   {key} = {_toml_string(getattr(EXAMPLE_CONTACT, key))}\n" for key in CONTACT_KEYS)
        addresses = "".join(
            f"  {{ postcode = {_toml_string(a.postcode)}, address = {_toml_string(a.address)} }},\n"
            for a in self.canary_addresses
        )
        return (
            "# The machine name (ASCII slug) goes into packages; people read the display name.\n"
            f"issuer = {_toml_string(self.issuer)}\n"
            f"issuer_name = {_toml_string(self.issuer_name)}\n"
            "# Canary households live at these addresses, one per household. Replace them with addresses the city\n"
            "# controls (mail to them reaches the city), written as residents' addresses are: a letter that arrives\n"
            "# there, or a call quoting one, means a package was misused.\n"
            f"canary_addresses = [\n{addresses}]\n"
            "# Signed audit anchors; put them where this machine's administrator cannot rewrite them:\n"
            f'# anchors_file = "/mnt/worm/civicseal-anchors.jsonl"  (default: {ANCHORS_FILE} in the home)\n'
            "\n"
            "# Printed on every letter to residents: whom to call. `incident notify` refuses while any is empty.\n"
            "# For example:\n"
            f"{example}"
            "[contact]\n"
            f"{contact}"
        )


def check_issuer_name(display_name: str) -> str:
    """A display name in any script, one line, at most MAX_DISPLAY_NAME characters; returned trimmed."""
    name = display_name.strip()
    if not name or len(name) > MAX_DISPLAY_NAME or any(unicodedata.category(c).startswith("C") for c in name):
        raise StoreError(f"issuer display name: 1-{MAX_DISPLAY_NAME} characters on one line, any script")
    return name


def default_config(
    issuer: str, issuer_name: str | None = None, canary_addresses: tuple[CanaryAddress, ...] = ()
) -> Config:
    if not ISSUER_NAME.fullmatch(issuer):
        raise StoreError(
            "issuer: letters, digits, '-' and '_' only, at most 64 characters; give a machine name as --issuer"
            " (e.g. amagasaki) and the name people read, in any script, as --issuer-name (e.g. 尼崎市)"
        )
    return Config(
        issuer=issuer,
        issuer_name=check_issuer_name(issuer_name) if issuer_name is not None else issuer,
        canary_addresses=canary_addresses,
    )


def _read_toml(path: Path) -> dict[str, object]:
    """config.toml as parsed, or one line saying why it cannot be (people edit it by hand)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise StoreError(f"{path}: not UTF-8; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"{path}: not valid TOML ({exc})") from None


def _load_config(path: Path) -> Config:
    """config.toml as written by :meth:`Config.to_toml`, or by an older version (no display name, no contact)."""
    data = _read_toml(path)
    contact = data.get("contact", {})
    if not isinstance(contact, dict):
        raise StoreError(f"{path}: contact: expected a [contact] table")
    for where, table, keys in (("", data, ("issuer", "issuer_name")), ("contact.", contact, CONTACT_KEYS)):
        for key in keys:
            if not isinstance(table.get(key, ""), str):
                raise StoreError(f"{path}: {where}{key}: expected a string in quotes")
    if "issuer" not in data:
        raise StoreError(f"{path}: issuer: missing")
    try:
        addresses = tuple(
            CanaryAddress(str(a["postcode"]), str(a["address"])) for a in data.get("canary_addresses", ())
        )
    except (KeyError, TypeError):
        raise StoreError(f"{path}: canary_addresses: each needs a postcode and an address") from None
    return Config(
        issuer=data["issuer"],
        issuer_name=data.get("issuer_name", "").strip(),
        contact=Contact(**{key: contact.get(key, "").strip() for key in CONTACT_KEYS}),
        canary_addresses=addresses,
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
        return _read_toml(self.config_path)

    @cached_property
    def config(self) -> Config:
        self.require()
        return _load_config(self.config_path)

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
        from civicseal.store.engine import DATABASE_URL_ENV, database_url  # the driver loads only when a store opens

        named = self.settings.get("database_url")
        if named and not os.environ.get(DATABASE_URL_ENV):
            return str(named)
        return database_url(self.path)

    def store(self) -> tuple[str, str]:
        """The store's URL, and what to say when it holds no schema. The home's own SQLite file, missing, is
        refused here: connecting would leave an empty one, as a second register beside the real one."""
        from civicseal.store.engine import SQLITE_FILE
        from civicseal.store.migrate import EMPTY_DATABASE, EMPTY_FILE, StoreEmpty

        self.require()
        url = self.database_url
        if url != f"sqlite:///{self.path / SQLITE_FILE}":
            return url, EMPTY_DATABASE
        if not (self.path / SQLITE_FILE).exists():
            raise StoreEmpty(EMPTY_FILE.format(home=self.path))
        return url, EMPTY_FILE.format(home=self.path)

    @cached_property
    def engine(self) -> Engine:
        """The store, refused at another schema than this civicseal's (``civicseal upgrade`` migrates it), or
        at none."""
        from civicseal.store.engine import make_engine
        from civicseal.store.migrate import check_revision

        url, empty = self.store()
        engine = make_engine(url)
        check_revision(engine, empty)
        return engine
