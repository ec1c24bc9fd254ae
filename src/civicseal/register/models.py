"""The resident register as the city exports it: residents (grouped in households), tax rows, bank accounts.

Residents who moved out or died are marked, never deleted: entitlements and packages keep referring to them.
Encrypted columns end in ``_enc``; ``_bidx`` columns are keyed blind indexes for equality look-ups (no
query looks anyone up by one yet, so they carry no b-tree: the one that first does adds it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import ClassVar

from sqlalchemy import Boolean, Date, Index, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import NOT_SAMPLED, Base


class Resident(Base):
    __tablename__ = "residents"

    resident_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    household_code: Mapped[str] = mapped_column(String(50))
    relationship: Mapped[str] = mapped_column(String(50))  # the 続柄 word as written
    is_head: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(100), info=NOT_SAMPLED)
    name_kana: Mapped[str] = mapped_column(String(100))
    sex: Mapped[int] = mapped_column(SmallInteger)
    birth_date: Mapped[date] = mapped_column(Date)
    postcode: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200), info=NOT_SAMPLED)
    moved_in: Mapped[date | None] = mapped_column(Date)
    moved_out: Mapped[date | None] = mapped_column(Date)
    deceased: Mapped[date | None] = mapped_column(Date)
    my_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    my_number_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    row_mac: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__: ClassVar = (
        # A household's members with what says whether each is resident on a date and who heads it: the
        # programme run reads the households from this index alone, in order, never the wide rows. SQLite's
        # index holds the table's key anyway; PostgreSQL's is told to (migration 0015).
        Index(
            "ix_residents_household_code",
            household_code,
            is_head,
            birth_date,
            moved_in,
            moved_out,
            deceased,
            postgresql_include=["resident_code"],
        ),
        {"sqlite_with_rowid": False},  # the code is the key: one b-tree, not two
    )


class TaxAssessment(Base):
    __tablename__ = "tax_assessments"

    resident_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxed: Mapped[bool] = mapped_column(Boolean)
    income_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    dependent_of: Mapped[str | None] = mapped_column(String(50))
    row_mac: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__: ClassVar = {"sqlite_with_rowid": False}


class BankAccount(Base):
    __tablename__ = "bank_accounts"

    household_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    bank_code: Mapped[str] = mapped_column(String(4))
    branch_code: Mapped[str] = mapped_column(String(3))
    account_type: Mapped[int] = mapped_column(SmallInteger)
    account_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    account_number_bidx: Mapped[bytes] = mapped_column(LargeBinary)
    holder_kana: Mapped[str] = mapped_column(String(100))
    row_mac: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__: ClassVar = {"sqlite_with_rowid": False}


def tax_row_key(resident_code: object, fiscal_year: object) -> str:
    return tax_row_keys([resident_code], [fiscal_year])[0]


def tax_row_keys(resident_codes: Iterable[object], fiscal_years: Iterable[object]) -> list[str]:
    """The row key each tax row's encrypted income is bound to (the table's key: resident and fiscal year),
    for whole columns, formatted from C: import binds millions."""
    return list(map("{}/{}".format, resident_codes, fiscal_years))
