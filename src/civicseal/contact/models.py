"""Contact-centre users, their sessions, every look-up, alerts, call notes and change requests.

Everything two web workers must agree on lives here, never in process memory: sessions, failed sign-ins,
look-up counts for the extraction guard and the alerts it raises.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from civicseal.store.base import Base


class ContactUser(Base):
    __tablename__ = "contact_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # operator, supervisor, admin
    organization: Mapped[str | None] = mapped_column(String(64))  # a recipient's name; None: the city's own staff
    password_hash: Mapped[str] = mapped_column(String(200))  # Argon2id, PHC string
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # FieldCipher, contact_users.totp_secret
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)  # a code is accepted once
    api_token_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    api_token_sha256: Mapped[str | None] = mapped_column(String(64))
    failed_signins: Mapped[int] = mapped_column(Integer, default=0)  # consecutive; reset by a good sign-in
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_reason: Mapped[str | None] = mapped_column(String(32))
    hourly_limit: Mapped[int] = mapped_column(Integer)
    miss_limit_percent: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContactSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "contact_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("contact_users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_reason: Mapped[str | None] = mapped_column(String(16))  # signed-out, idle, revoked


class SignInFailure(Base):
    """A failed sign-in by source address: five in a window block that address, whichever names it tried."""

    __tablename__ = "contact_signin_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_contact_signin_failures_source_at", "source", "at"),)


class Lookup(Base):
    """Every look-up, hit or miss: the extraction guard counts these rows, so its limits hold across workers."""

    __tablename__ = "contact_lookups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("contact_users.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    call_reference: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))  # hit, miss, invalid (check digit), refused
    entitlement_id: Mapped[int | None] = mapped_column(ForeignKey("entitlements.id"))
    reference_number: Mapped[str | None] = mapped_column(String(12))  # as asked (a valid number), hit or miss
    method: Mapped[str] = mapped_column(String(16))  # reference, name
    audit_seq: Mapped[int | None] = mapped_column(Integer, index=True)  # None until chained into the audit log

    __table_args__ = (Index("ix_contact_lookups_user_at", "user_id", "at"),)


class Alert(Base):
    __tablename__ = "contact_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # canary, hourly-limit, miss-rate
    user_id: Mapped[int] = mapped_column(ForeignKey("contact_users.id"))
    reference_number: Mapped[str | None] = mapped_column(String(12))  # the canary's number
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CallNote(Base):
    __tablename__ = "contact_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("contact_users.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    call_reference: Mapped[str] = mapped_column(String(32))
    note_enc: Mapped[bytes] = mapped_column(LargeBinary)  # operators type what callers say: encrypted


class ChangeRequest(Base):
    """An address or account change an operator took down; it takes effect only when a supervisor approves."""

    __tablename__ = "contact_change_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # address, account
    details_enc: Mapped[bytes] = mapped_column(LargeBinary)  # JSON of the new values, encrypted
    requested_by: Mapped[int] = mapped_column(ForeignKey("contact_users.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str | None] = mapped_column(String(16))  # approved, rejected
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("contact_users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
