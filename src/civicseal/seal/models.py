"""Packages as the city recorded them at sealing: who can open them, who is exposed, which canaries."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


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
