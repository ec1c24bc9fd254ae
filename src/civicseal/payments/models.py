"""Payment batches: what was put in a Zengin file, what was held out, and what came back.

A batch row is written when its file is made; its items move to ``paid`` only when the batch is marked
sent. Items keep the account as a blind index (never the number), so a later batch can see an account
that was already paid, or one that bounced, without decrypting anything.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


class PaymentBatch(Base):
    __tablename__ = "payment_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # made → sent
    pay_date: Mapped[date] = mapped_column(Date)
    payer_code: Mapped[str] = mapped_column(String(10))
    payer_bank: Mapped[str] = mapped_column(String(4))
    payer_branch: Mapped[str] = mapped_column(String(3))
    records: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)  # a city: 74,767 × 100,000 yen passes 2**31
    held: Mapped[int] = mapped_column(Integer)
    file_sha256: Mapped[str] = mapped_column(String(64))  # of the Zengin plaintext, sealed or not
    package_id: Mapped[str | None] = mapped_column(ForeignKey("packages.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_by: Mapped[str | None] = mapped_column(String(100))


class PaymentItem(Base):
    """One transfer of a batch; ``item_no`` is the customer code in the file, which a bank's return echoes."""

    __tablename__ = "payment_items"

    batch_id: Mapped[int] = mapped_column(ForeignKey("payment_batches.id"), primary_key=True)
    item_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), index=True)
    bank_code: Mapped[str] = mapped_column(String(4))
    branch_code: Mapped[str] = mapped_column(String(3))
    account_type: Mapped[int] = mapped_column(SmallInteger)
    account_bidx: Mapped[bytes] = mapped_column(LargeBinary)
    amount: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending → paid → returned
    return_code: Mapped[str | None] = mapped_column(String(10))
    returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaymentHold(Base):
    """An entitlement held out of a batch as a possible double payment, until a supervisor clears it."""

    __tablename__ = "payment_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payment_batches.id"), index=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by: Mapped[str | None] = mapped_column(String(100))
    cleared_reason: Mapped[str | None] = mapped_column(String(500))
