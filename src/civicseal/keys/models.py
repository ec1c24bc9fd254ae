"""Recipients (contractors) and the key service's record of every unlock attempt."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


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


class UnlockAttempt(Base):
    __tablename__ = "unlock_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    package_id: Mapped[str | None] = mapped_column(String(40), index=True)  # as asked; may name no package
    token_id: Mapped[str | None] = mapped_column(String(32), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id"))
    source: Mapped[str] = mapped_column(String(64))  # the client's address
    outcome: Mapped[str] = mapped_column(String(32))  # granted, bad-token, revoked, expired, locked, …
