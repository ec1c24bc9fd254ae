"""The reader's trust store: the issuer keys this home accepts packages from (``trust.toml``).

A package names its issuer's key id, but a key carried inside a package is never trusted by itself: a
reader opens only packages signed by a key it was given out of band (``civicseal trust add NAME
ed25519:<base64>``, the line the city's ``civicseal keys public`` prints). The file is tiny TOML that
we write ourselves (the standard library reads TOML but does not write it)::

    [issuers.city]
    public_key = "ed25519:<base64 of the raw 32-byte key>"
    key_id = "<first 16 hex digits of SHA-256 of the raw key>"

It is written atomically (temporary file, fsync, rename) with mode 0600, and re-validated on every load:
a ``key_id`` that does not match its key, or a key trusted under two names, makes the store refuse.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from civicseal.cseal import key_id
from civicseal.cseal.errors import SealError

TRUST_FILE: Final = "trust.toml"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREFIX: Final = "ed25519:"


@dataclass(frozen=True)
class TrustedIssuer:
    """One trusted issuer: the name the reader gave it, its key id and its public key."""

    name: str
    key_id: str
    public_key: Ed25519PublicKey

    @property
    def public_line(self) -> str:
        """The key in the ``ed25519:<base64>`` form that :func:`add_trusted` takes."""
        return format_public_key(self.public_key)


def format_public_key(public_key: Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the raw 32-byte key>`` — the form printed and pasted between homes."""
    return _PREFIX + base64.b64encode(public_key.public_bytes_raw()).decode("ascii")


def parse_public_key(public_line: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>`` strictly (standard base64 with padding, exactly 32 bytes)."""
    text = public_line.strip()
    if not text.startswith(_PREFIX):
        raise SealError("an issuer key must look like ed25519:<base64>")
    try:
        raw = base64.b64decode(text[len(_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SealError("an issuer key must look like ed25519:<base64>") from None
    if len(raw) != 32:
        raise SealError("an ed25519 issuer key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SealError("an issuer name is 1-64 letters, digits, '-' or '_'")


def load_issuers(home: Path) -> list[TrustedIssuer]:
    """Every issuer trusted in ``home``'s ``trust.toml`` (none if the file does not exist), validated."""
    path = Path(home) / TRUST_FILE
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return []
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise SealError(f"{path}: not valid TOML") from None
    table = data.get("issuers", {})
    if not isinstance(table, dict) or set(data) - {"issuers"}:
        raise SealError(f"{path}: expected only [issuers.NAME] tables")
    issuers: list[TrustedIssuer] = []
    seen: dict[str, str] = {}
    for name, entry in table.items():
        _check_name(name)
        if not isinstance(entry, dict) or set(entry) != {"public_key", "key_id"}:
            raise SealError(f"{path}: issuer {name} must have exactly public_key and key_id")
        if not isinstance(entry["public_key"], str):
            raise SealError(f"{path}: issuer {name}: public_key is not a string")
        public_key = parse_public_key(entry["public_key"])
        kid = key_id(public_key)
        if entry["key_id"] != kid:
            raise SealError(f"{path}: issuer {name}: key_id does not match its public key")
        if kid in seen:
            raise SealError(f"{path}: issuers {seen[kid]} and {name} hold the same key")
        seen[kid] = name
        issuers.append(TrustedIssuer(name, kid, public_key))
    return issuers


def load_trusted(home: Path) -> dict[str, Ed25519PublicKey]:
    """Trusted issuer keys by key id — the mapping :func:`civicseal.cseal.verify` takes."""
    return {issuer.key_id: issuer.public_key for issuer in load_issuers(home)}


def _write(home: Path, issuers: list[TrustedIssuer]) -> None:
    lines = ["# civicseal trust store: issuer keys this home accepts packages from.", ""]
    for issuer in sorted(issuers, key=lambda i: i.name):
        lines += [
            f"[issuers.{issuer.name}]",
            f'public_key = "{issuer.public_line}"',
            f'key_id = "{issuer.key_id}"',
            "",
        ]
    home = Path(home)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=home, prefix=f".{TRUST_FILE}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, home / TRUST_FILE)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(home, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def add_trusted(home: Path, name: str, public_line: str) -> str:
    """Trust the issuer key ``public_line`` (``ed25519:<base64>``) under ``name``; return its key id.

    Adding the same key under the same name again changes nothing. A name already bound to another key,
    or a key already trusted under another name, is refused: replacing trust is an explicit
    :func:`remove_trusted` first, never a side effect.
    """
    _check_name(name)
    public_key = parse_public_key(public_line)
    kid = key_id(public_key)
    issuers = load_issuers(home)
    for issuer in issuers:
        if issuer.name == name and issuer.key_id == kid:
            return kid
        if issuer.name == name:
            raise SealError(
                f"issuer {name} is already trusted with key {issuer.key_id}; `civicseal trust remove {name}` first"
            )
        if issuer.key_id == kid:
            raise SealError(f"key {kid} is already trusted as issuer {issuer.name}")
    _write(home, [*issuers, TrustedIssuer(name, kid, public_key)])
    return kid


def remove_trusted(home: Path, name: str) -> TrustedIssuer:
    """Stop trusting the issuer ``name`` and return what was removed; refuse a name that is not trusted."""
    _check_name(name)
    issuers = load_issuers(home)
    removed = [i for i in issuers if i.name == name]
    if not removed:
        raise SealError(f"issuer {name} is not trusted; `civicseal trust list` shows the names that are")
    _write(home, [i for i in issuers if i.name != name])
    return removed[0]
