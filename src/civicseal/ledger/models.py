"""The city's ledger of what it issued: each sealed package and each recipient it may go to.

These rows sit below every layer that reads them — custody tracks a package, the key service unlocks and
revokes it, sealing writes it, incidents report on it — so none of those has to import another to see
them (see the import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base

# A recipient's (and contractor's) machine name: an ASCII slug; people read its display name.
NAME_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Recipient(Base):
    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    age_recipient: Mapped[str] = mapped_column(String(100))
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64))  # SHA-256 of the whole token; the token is shown once
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # 10 failures in an hour
    display_name: Mapped[str | None] = mapped_column(String(200))  # what people read; the name is a slug
    # The organization it works for; None: the city's own staff, or a contractor not (yet) registered.
    contractor_id: Mapped[int | None] = mapped_column(ForeignKey("contractors.id"), index=True)


class Package(Base):
    __tablename__ = "packages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # pkg_<26 base32>, also in the manifest
    purpose: Mapped[str] = mapped_column(String(64))
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programmes.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    mode: Mapped[str] = mapped_column(String(16))
    key_service_url: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)  # the exact signed bytes
    payload_sha256: Mapped[str] = mapped_column(String(64))
    payload_format: Mapped[str] = mapped_column(String(16))
    fields: Mapped[str] = mapped_column(Text)  # comma-separated purpose fields
    records: Mapped[int] = mapped_column(Integer)  # households, canaries excluded
    canaries: Mapped[int] = mapped_column(Integer)
    scrypt_log_n: Mapped[int | None] = mapped_column(Integer)
    passphrase_bits: Mapped[int | None] = mapped_column(Integer)  # entropy of a generated passphrase
    # Tethered: the package's age identity, age-encrypted to the key service's unlock key and bound to the id.
    identity_age: Mapped[bytes | None] = mapped_column(LargeBinary)
    identity_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # before 0010: under the master key; re-wrapped
    pseudonym_key_enc: Mapped[bytes] = mapped_column(LargeBinary)  # lets the city re-identify
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(500))


class PackageMember(Base):
    """Each resident whose data the package carries: who is exposed if it is lost."""

    __tablename__ = "package_members"

    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    resident_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    household_code: Mapped[str] = mapped_column(String(50), index=True)
    pseudonym: Mapped[str] = mapped_column(String(32), index=True)  # the household's pseudonym in this package
