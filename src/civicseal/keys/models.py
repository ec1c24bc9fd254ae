"""The key service's record of every unlock attempt (recipients are in :mod:`civicseal.ledger.models`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


class UnlockAttempt(Base):
    __tablename__ = "unlock_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    package_id: Mapped[str | None] = mapped_column(String(40), index=True)  # as asked; may name no package
    token_id: Mapped[str | None] = mapped_column(String(32), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id"))
    source: Mapped[str] = mapped_column(String(64))  # the client's address
    outcome: Mapped[str] = mapped_column(String(32))  # granted, bad-token, revoked, expired, locked, …
