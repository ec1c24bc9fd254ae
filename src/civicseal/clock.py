"""The city's calendar: "today" is the day in Asia/Tokyo, wherever the server runs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")


def utcnow() -> datetime:
    return datetime.now(UTC)


def tokyo_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(TOKYO).date()


def as_utc(dt: datetime) -> datetime:
    """Times read back from SQLite come without a zone; the store only ever writes UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def for_people(dt: datetime) -> str:
    """A time as people read it: on the city's clock, to the minute (``2026-11-27 17:11 JST``)."""
    return dt.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M JST")
