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
    """``2026-11-27 17:11 JST``: the one way a person is shown a time, on the city's clock."""
    return as_utc(dt).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M JST")


def rfc3339(dt: datetime) -> str:
    """``2026-11-27T08:11:28Z``: the one way JSON, files and manifests carry a time (UTC, whole seconds,
    truncated, so one instant has exactly one spelling)."""
    u = as_utc(dt)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


def yes_no(flag: object) -> str:
    """People read yes/no, never Python's True/False/None."""
    return "yes" if flag else "no"
