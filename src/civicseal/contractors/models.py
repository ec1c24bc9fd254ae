"""Contractor organizations and their authority: a top-level contract with the city, or a parent's approval.

A link's authority (purposes, dates, who approved it, whether it was withdrawn) lives on its own row:
there is one current authority per organization, and its history is the audit log.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


class Contractor(Base):
    __tablename__ = "contractors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # ASCII slug: logs, URLs, options
    display_name: Mapped[str] = mapped_column(String(200))  # what people read: 株式会社〇〇印刷
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("contractors.id"), index=True)  # None: the city's own
    contract_ref: Mapped[str | None] = mapped_column(String(100))
    purposes: Mapped[str | None] = mapped_column(Text)  # comma-separated; None: no authority (not yet approved)
    valid_from: Mapped[date | None] = mapped_column(Date)  # days on the city's calendar, both inclusive
    valid_until: Mapped[date | None] = mapped_column(Date)
    approved_by: Mapped[str | None] = mapped_column(String(100))  # the city officer who approved a subcontractor
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
