"""A key-service home for a host of its own: the unlock key and the store's location, nothing else.

The key service needs to read and write the store (packages, recipients, custody, the unlock log and
the audit chain) and to open package identities. It needs neither the master field key (which opens
every My Number and account number) nor the signing key (which makes packages and anchors the city
would vouch for), so a key-service home holds neither: whoever takes that host can release identities
of packages the service would release anyway, until the city revokes them, and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import select, update

from civicseal.audit import log as audit
from civicseal.keys.city import load_city_keys, read_unlock_identity, unlock_public_key, wrap_identity, write_unlock_key
from civicseal.keys.errors import KeyMaterialError
from civicseal.ledger.models import Package
from civicseal.store.engine import transaction
from civicseal.store.files import atomic_writer
from civicseal.store.home import CONFIG_FILE, KEY_SERVICE_ROLE, Home

LEGACY_IDENTITY_COLUMN: Final = "packages.identity"  # the associated data identities had under the master key


@dataclass(frozen=True)
class SplitHome:
    path: Path
    database: str  # the store's location as written (a PostgreSQL URL's password is not repeated here)
    rewrapped: int


def rewrap_identities(home: Home) -> int:
    """Re-wrap identities sealed before the split (under the master key) for the unlock key; return how many."""
    recipient = unlock_public_key(home.keys)
    t = Package.__table__
    with transaction(home.engine) as conn:
        legacy = conn.execute(select(t.c.id, t.c.identity_enc).where(t.c.identity_enc.is_not(None))).all()
        if not legacy:
            return 0
        cipher = load_city_keys(home.keys).field_cipher()
        for package_id, enc in legacy:
            wrapped = wrap_identity(recipient, package_id, cipher.decrypt_unbound(enc, LEGACY_IDENTITY_COLUMN))
            conn.execute(update(t).where(t.c.id == package_id).values(identity_age=wrapped, identity_enc=None))
        audit.append(conn, "keys.identities-rewrapped", "home", home.config.issuer, {"packages": len(legacy)})
    return len(legacy)


def split_service(home: Home, out: Path, *, now: datetime, actor: str) -> SplitHome:
    """Write a key-service home at ``out`` (a new or empty folder): ``keys/unlock.age`` and ``config.toml``.

    Identities still under the master key are re-wrapped first, so the new home can release every
    tethered package. The city's own home keeps the unlock key too (sealing needs only ``unlock.pub``;
    once the service runs elsewhere the city may delete ``keys/unlock.age`` from its own home).
    """
    if out.exists() and any(out.iterdir()):
        raise KeyMaterialError(f"{out}: not empty; a key-service home is made in a new or empty folder")
    rewrapped = rewrap_identities(home)
    identity = read_unlock_identity(home.keys)
    location = home.database_url  # a PostgreSQL URL, or the SQLite file by absolute path (the home's is)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    out.chmod(0o700)
    write_unlock_key(out / "keys", identity)
    with atomic_writer(out / CONFIG_FILE, text=True) as f:
        f.write(
            "# A civicseal key-service home: `civicseal serve --home` runs the key service only.\n"
            "# It holds the unlock key and this store's location; none of the city's other keys.\n"
            f'role = "{KEY_SERVICE_ROLE}"\n'
            f"database_url = {_toml_string(location)}\n"
        )
    with transaction(home.engine) as conn:
        audit.append(
            conn, "keys.split-service", "home", home.config.issuer, {"rewrapped": rewrapped}, actor=actor, now=now
        )
    shown = location.split("@", 1)[-1] if "@" in location else location
    return SplitHome(out.absolute(), shown, rewrapped)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
