"""Recipients: the contractors a package can be sealed for, their age keys and their key-service tokens.

A recipient holds two secrets of its own and the city holds neither: its age identity (made with
:func:`keygen` on the contractor's machine; the city registers only the public ``age1…`` recipient) and
its key-service token (made by :func:`add_recipient`, shown once, stored as SHA-256 only).

Token: ``cst_<token id: 16 hex>_<secret: 256 bits, 52 lowercase base32 characters>``. The id is not a
secret (it is written to the unlock log, so attempts can be counted per token); the secret is. The store
keeps only SHA-256 of the whole token: a 256-bit random secret cannot be guessed from its hash, so a slow
password hash would add 50–100 ms to every unlock and no security (DESIGN.md, "Data model and flows").
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import pyrage
from sqlalchemy import Connection, Engine, RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from civicseal.audit import log as audit
from civicseal.clock import as_utc
from civicseal.contractors.models import Contractor
from civicseal.cseal.payload import X25519Identity
from civicseal.keys.errors import KeyServiceError
from civicseal.keys.evidence import log_attempt
from civicseal.ledger.models import NAME_RE, Recipient
from civicseal.store.engine import transaction

TOKEN_PREFIX: Final = "cst_"
TOKEN_ID_HEX: Final = 16
SECRET_BYTES: Final = 32
# cst_ + 16 hex + _ + 52 base32 (256 bits, unpadded, lowercase): base32 has no '_', so splitting is exact.
TOKEN_RE: Final = re.compile(r"cst_([0-9a-f]{16})_([a-z2-7]{52})")
TOKEN_ID_RE: Final = re.compile(r"cst_([0-9a-f]{16})_")
MAX_TOKEN_CHARS: Final = 200
UNLOCKED_BY_CITY: Final = "unlocked-by-city"


@dataclass(frozen=True)
class RecipientInfo:
    """A registered recipient as the city sees it; no secret is part of it."""

    name: str
    age_recipient: str
    token_id: str
    created_at: datetime
    locked_at: datetime | None
    display_name: str  # the name itself when none was given
    contractor: str | None  # the registered organization it works for

    def as_dict(self) -> dict[str, object]:
        """Stable snake_case keys for ``--json``; times as ISO 8601 UTC."""
        return {
            "name": self.name,
            "age_recipient": self.age_recipient,
            "token_id": self.token_id,
            "created_at": as_utc(self.created_at).isoformat(),
            "locked_at": as_utc(self.locked_at).isoformat() if self.locked_at else None,
            "locked": self.locked_at is not None,
            "display_name": self.display_name,
            "contractor": self.contractor,
        }


# --------------------------------------------------------------------------------------------------
# The contractor's own identity
# --------------------------------------------------------------------------------------------------


def keygen(out: Path) -> str:
    """Write a fresh age X25519 identity to ``out`` (0600) and return its public ``age1…`` recipient.

    An existing file is never replaced: it may be the only key that opens packages already sealed for
    this contractor. The file holds the bare ``AGE-SECRET-KEY-1…`` line, which ``age -i`` reads too.
    """
    out = Path(out)
    identity = pyrage.x25519.Identity.generate()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyServiceError(f"{out} already exists; an identity file is never overwritten") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(f"{identity}\n")
        f.flush()
        os.fsync(f.fileno())
    return str(identity.to_public())


def load_identity(path: Path) -> X25519Identity:
    """Read an age identity file (the bare key, or age-keygen's form with ``#`` comment lines)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyServiceError(f"{path}: cannot read the identity file ({type(exc).__name__})") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(keys) != 1:
        raise KeyServiceError(f"{path}: expected exactly one AGE-SECRET-KEY-1… line")
    return X25519Identity(keys[0])


def parse_age_recipient(age_recipient: str) -> str:
    """The canonical ``age1…`` form of an X25519 recipient, or KeyServiceError (the value is not echoed)."""
    try:
        return str(pyrage.x25519.Recipient.from_str(age_recipient.strip()))
    except (pyrage.RecipientError, ValueError):
        raise KeyServiceError("not an age X25519 recipient (age1…)") from None


def check_name(name: str) -> None:
    """Recipient names go into logs, file names and URLs: letters, digits, '-' and '_' only, ≤ 64."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise KeyServiceError("a recipient name is 1-64 letters, digits, '-' or '_'")


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------


def new_token() -> tuple[str, str]:
    """A fresh ``(token_id, token)``; the secret comes from the OS's CSPRNG."""
    token_id = secrets.token_hex(TOKEN_ID_HEX // 2)
    secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=").lower()
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"


def token_digest(token: str) -> str:
    """SHA-256 (hex) of the whole token — all the store ever keeps of it."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def token_id_of(token: str) -> str | None:
    """The token id when ``token`` starts like a token (``cst_<16 hex>_``), else None; never raises."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    m = TOKEN_ID_RE.match(token)
    return m.group(1) if m else None


def is_well_formed(token: str) -> bool:
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


def add_recipient(
    engine: Engine,
    name: str,
    age_recipient: str,
    *,
    now: datetime,
    actor: str,
    display_name: str | None = None,
    contractor: str | None = None,
) -> str:
    """Register a contractor and return its key-service token — the only time the token exists in clear.

    ``contractor`` names the registered organization the recipient works for; without one, the recipient
    is the city's own staff or a contractor not yet registered, and no chain is checked for it.
    Refuses an invalid name or age recipient and a name already registered. Audited (name, token id,
    age recipient, contractor; never the token).
    """
    # Imported here: the contractor register reads this module's name rule, so it cannot be imported first.
    from civicseal.contractors.service import clean_text, contractor_id

    check_name(name)
    parsed = parse_age_recipient(age_recipient)
    shown = clean_text("display name", display_name)
    token_id, token = new_token()
    now = as_utc(now)
    try:
        with transaction(engine) as conn:
            if conn.execute(select(Recipient.id).where(Recipient.name == name)).first() is not None:
                raise KeyServiceError(f"recipient {name} already exists")
            conn.execute(
                insert(Recipient).values(
                    name=name,
                    age_recipient=parsed,
                    token_id=token_id,
                    token_sha256=token_digest(token),
                    created_at=now,
                    locked_at=None,
                    display_name=shown,
                    contractor_id=contractor_id(conn, contractor) if contractor is not None else None,
                )
            )
            details = {"token_id": token_id, "age_recipient": parsed, "contractor": contractor}
            audit.append(conn, "keys.recipient-added", "recipient", name, details, actor=actor, now=now)
    except IntegrityError:  # a concurrent add of the same name (or, at 2^-64, the same token id)
        raise KeyServiceError(f"recipient {name} already exists") from None
    return token


def _recipient_by_name(conn: Connection, name: str, *, lock: bool = False) -> RowMapping:
    query = select(Recipient.__table__).where(Recipient.name == name)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise KeyServiceError(f"no recipient named {name}; `civicseal recipient list` shows those registered")
    return row


def unlock_recipient(engine: Engine, name: str, *, now: datetime, actor: str) -> None:
    """Clear a lock-out so the recipient's token works again.

    The unlock is a row in the unlock log (outcome ``unlocked-by-city``), and failures are counted only
    after the latest such row, so the failures that caused the lock do not lock the token again at once.
    Refuses a recipient that is not locked (nothing to do is more likely a wrong name than intent).
    """
    check_name(name)
    now = as_utc(now)
    with transaction(engine) as conn:
        row = _recipient_by_name(conn, name, lock=True)
        if row["locked_at"] is None:
            raise KeyServiceError(f"recipient {name} is not locked")
        conn.execute(update(Recipient).where(Recipient.id == row["id"]).values(locked_at=None))
        log_attempt(
            conn,
            at=now,
            package_id=None,
            token_id=row["token_id"],
            recipient_id=row["id"],
            source=actor[:64],
            outcome=UNLOCKED_BY_CITY,
            actor=actor,
        )
        details = {"token_id": row["token_id"], "locked_at": as_utc(row["locked_at"]).isoformat()}
        audit.append(conn, "keys.unlocked-by-city", "recipient", name, details, actor=actor, now=now)


def rotate_token(engine: Engine, name: str, *, now: datetime, actor: str) -> str:
    """Give the recipient a new key-service token and return it — the only time it exists in clear.

    The old token stops at once: the store keeps one token per recipient, and its hash is replaced in
    the same transaction as the audit row (old and new token ids; never a token). A lock-out belonged
    to the old token, so it is cleared with it; the new token id starts with no failures counted.
    """
    check_name(name)
    token_id, token = new_token()
    now = as_utc(now)
    with transaction(engine) as conn:
        row = _recipient_by_name(conn, name, lock=True)
        conn.execute(
            update(Recipient)
            .where(Recipient.id == row["id"])
            .values(token_id=token_id, token_sha256=token_digest(token), locked_at=None)
        )
        details = {"old_token_id": row["token_id"], "token_id": token_id, "was_locked": row["locked_at"] is not None}
        audit.append(conn, "keys.token-rotated", "recipient", name, details, actor=actor, now=now)
    return token


def list_recipients(engine: Engine) -> list[RecipientInfo]:
    """Every registered recipient, by name."""
    table = Recipient.__table__
    query = (
        select(
            table.c.name,
            table.c.age_recipient,
            table.c.token_id,
            table.c.created_at,
            table.c.locked_at,
            table.c.display_name,
            Contractor.name.label("contractor"),
        )
        .outerjoin(Contractor, Contractor.id == table.c.contractor_id)
        .order_by(table.c.name)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        RecipientInfo(
            r.name,
            r.age_recipient,
            r.token_id,
            as_utc(r.created_at),
            as_utc(r.locked_at) if r.locked_at else None,
            r.display_name or r.name,
            r.contractor,
        )
        for r in rows
    ]


def display_name_of_recipient(conn: Connection, name: str) -> str:
    """The name people read for the recipient ``name`` in reports and letters (株式会社〇〇印刷).

    The one place that answers it; a recipient registered without a display name is shown by its slug.
    """
    shown = conn.execute(select(Recipient.display_name).where(Recipient.name == name)).scalar_one_or_none()
    return shown or name
