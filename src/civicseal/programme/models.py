"""Programmes and entitlements: the programme's own record of who was entitled, frozen at run time."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, LargeBinary, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


class Programme(Base):
    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    reference_date: Mapped[date] = mapped_column(Date)
    fiscal_year: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProgrammeExclusion(Base):
    """A household entitled under ``excluded_id`` is not entitled again under ``programme_id``."""

    __tablename__ = "programme_exclusions"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    excluded_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)


class ReferenceNumber(Base):
    """Every reference number ever issued, entitlements and canaries alike: unique across the store."""

    __tablename__ = "reference_numbers"

    number: Mapped[str] = mapped_column(String(12), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))


class Entitlement(Base):
    __tablename__ = "entitlements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    household_code: Mapped[str] = mapped_column(String(50))  # looked up through (programme_id, household_code)
    head_resident_code: Mapped[str] = mapped_column(String(50), index=True)
    reference_number: Mapped[str] = mapped_column(ForeignKey("reference_numbers.number"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("programme_id", "household_code"),
        # Room on each page for a status change of every row: a heap-only update, no index entry (0016).
        {"postgresql_with": {"fillfactor": 50}},
    )


class EntitlementMember(Base):
    """The household's members on the reference date, as the run saw them."""

    __tablename__ = "entitlement_members"

    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), primary_key=True)
    resident_code: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class EntitlementEvent(Base):
    """Every change of an entitlement's status, with who made it and why: the programme's own history."""

    __tablename__ = "entitlement_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(100))


class EntitlementAccount(Base):
    """The account a household gave on its confirmation form; it wins over the register's account."""

    __tablename__ = "entitlement_accounts"

    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), primary_key=True)
    bank_code: Mapped[str] = mapped_column(String(4))
    branch_code: Mapped[str] = mapped_column(String(3))
    account_type: Mapped[int] = mapped_column(SmallInteger)
    account_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    holder_kana: Mapped[str] = mapped_column(String(100))
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProgrammeRun(Base):
    """One run's funnel (JSON of the figures `programme run --json` prints), for `programme show`."""

    __tablename__ = "programme_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))
    funnel: Mapped[str] = mapped_column(Text)
