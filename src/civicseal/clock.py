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
    """``2026-11-27T08:11:28Z``: the one way JSON and files carry a time (UTC, whole seconds)."""
    return as_utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def yes_no(flag: object) -> str:
    """People read yes/no, never Python's True/False/None."""
    return "yes" if flag else "no"
