"""Packages as the city recorded them at sealing: who can open them, who is exposed, which canaries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


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


class Canary(Base):
    """A synthetic household unique to one package: when it turns up, the package it came from is known."""

    __tablename__ = "canaries"

    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)
    reference_number: Mapped[str] = mapped_column(ForeignKey("reference_numbers.number"), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[str] = mapped_column(String(10))
