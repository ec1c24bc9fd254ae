"""Packages as the city recorded them at sealing: who can open them, who is exposed, which canaries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


class CanaryHousehold(Base):
    """A synthetic household kept for one recipient and programme, carried in every package to that recipient.

    Persistent, so that two packages to the same recipient hold the same canaries as they hold the same
    real households: comparing them reveals nothing. Its reference number is reserved in
    ``reference_numbers`` (kind ``canary``) and kept in clear: a canary is nobody's personal data.
    ``status`` and ``amount`` are the values it carried last, those of its twin: the real household it
    follows (seal/canaries.py).
    """

    __tablename__ = "canary_households"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), index=True)
    reference_number: Mapped[str] = mapped_column(ForeignKey("reference_numbers.number"), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    name_kana: Mapped[str] = mapped_column(String(100))
    sex: Mapped[int] = mapped_column(SmallInteger)
    birth_date: Mapped[str] = mapped_column(String(10))
    postcode: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    twin_entitlement_id: Mapped[int | None] = mapped_column(ForeignKey("entitlements.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PackageCanary(Base):
    """Which canary households a package carried, under which of the package's pseudonyms."""

    __tablename__ = "package_canaries"

    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    canary_id: Mapped[int] = mapped_column(ForeignKey("canary_households.id"), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), index=True)
