"""The chain of custody: where every package that left the city is, who holds it, and since when.

The timeline of a package is append-only. Its latest event is the package's custody state; the key
service lets a tethered package be unlocked only in the states of :data:`UNLOCKABLE` and never once it
was lost, and a package is overdue while it is not back with the city (or destroyed) after its expiry.
Which event may follow which is the single table :data:`TRANSITIONS`.

Lost means revoked: ``lost`` is recorded only by the loss decision (``civicseal.incident.service.record_loss``,
which revokes the package and opens or joins its incident in the same transaction); this module, below
``incident``, checks that it was, so no path can record a loss that leaves a package openable.

Times are stored in UTC. A person types times on the city's clock (Asia/Tokyo); :func:`parse_at` reads
them so. Holders, locations and notes are kept in the timeline only, never in the audit log.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, Subquery, func, insert, or_, select

from civicseal.audit import log as audit
from civicseal.clock import TOKYO, as_utc, for_people, utcnow
from civicseal.cseal import CLOCK_SKEW
from civicseal.custody.errors import CustodyError
from civicseal.custody.events import ACCOUNTED_FOR, JAPANESE, TRANSITIONS, TYPED, UNLOCKABLE, Event
from civicseal.custody.models import CustodyEvent
from civicseal.ledger.models import Package, Recipient
from civicseal.programme.service import mark_notified
from civicseal.register import normalize as n
from civicseal.register.errors import InvalidValue
from civicseal.store.engine import transaction

FIELD_LIMITS = {"holder": 100, "location": 200, "note": 1000}  # the column widths of custody_events

_ORDER = (CustodyEvent.at, CustodyEvent.id)  # one order everywhere: when it happened, then when it was recorded


def parse_event(value: Event | str) -> Event:
    """An event by its name, or as the city's staff write it (引渡し, 受領, 紛失…), refused with the list of
    names when it is none of them."""
    text = str(value).strip()
    try:
        return TYPED.get(text) or Event(text.lower())
    except ValueError:
        words = ", ".join(f"{event} ({JAPANESE[event]})" for event in Event)
        raise CustodyError(f"unknown custody event; one of: {words}") from None


# A date as the register's files may write it (2024/6/1, 2024年6月1日, 令和6年6月1日, R6.6.1), then the hour.
_WALL_CLOCK = re.compile(r"(.+?) ?([0-9]{1,2})(?::([0-9]{2})(?::([0-9]{2}))?|時(?:([0-9]{1,2})分(?:([0-9]{1,2})秒)?)?)")
EXAMPLES = "e.g. 2024-06-01T14:30+09:00, or on Tokyo's clock 2024/6/1 14:30 or 令和6年6月1日14時30分"


def parse_at(text: str) -> datetime:
    """Read a time a person typed: RFC 3339 / ISO 8601 with an offset, or without one on the city's clock.

    A time without an offset is Asia/Tokyo time, wherever the machine runs, because that is the clock
    the city's staff and its contractors read; its date may be written as a register writes one (slashes,
    年月日, an era). A date alone is refused: custody needs the hour.
    """
    raw = text.strip().upper()
    try:
        parsed = datetime.fromisoformat(raw) if "T" in raw or " " in raw else None
    except ValueError:
        parsed = None
    if parsed is None:
        parsed = _wall_clock(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=TOKYO)
    return parsed.astimezone(UTC)


def _a_date(text: str) -> bool:
    try:
        n.parse_date(text)
    except InvalidValue:
        return False
    return True


def _wall_clock(text: str) -> datetime:
    """A date as the register's files write one, and an hour (14:30 or 14時30分), on Tokyo's clock."""
    try:
        folded = n.normalize_text(text)
    except InvalidValue as exc:
        raise CustodyError(f"time {text!r}: {exc.rule}") from None
    m = _WALL_CLOCK.fullmatch(folded)
    if m is None:
        wanted = "a date and a time are needed" if _a_date(folded) else "not a date and time"
        raise CustodyError(f"time {text!r}: {wanted}, {EXAMPLES}")
    try:
        day = n.parse_date(m[1])
    except InvalidValue as exc:
        raise CustodyError(f"time {text!r}: {exc.rule}, {EXAMPLES}") from None
    hour, minute, second = int(m[2]), int(m[3] or m[5] or 0), int(m[4] or m[6] or 0)
    try:
        return datetime(day.year, day.month, day.day, hour, minute, second)
    except ValueError:
        raise CustodyError(f"time {text!r}: no such time of day, {EXAMPLES}") from None


def check_next(package_id: str, current: Event | None, event: Event) -> None:
    """Refuse an event that cannot follow the current state, naming the rule it breaks."""
    if event in TRANSITIONS[current]:
        return
    if current is None:
        raise CustodyError(f"package {package_id} has no custody record: its chain starts with 'created' at sealing")
    if event is Event.CREATED:
        raise CustodyError(f"package {package_id} already has its 'created' event; a chain starts only once")
    if current is Event.DESTROYED:
        raise CustodyError(f"package {package_id} was destroyed; no event can follow 'destroyed'")
    if event is Event.FOUND:
        raise CustodyError(f"package {package_id} is {current}, not lost: 'found' follows only 'lost'")
    allowed = ", ".join(e for e in Event if e in TRANSITIONS[current])
    raise CustodyError(f"package {package_id} is {current}: '{event}' cannot follow; next may be {allowed}")


# Handing over the confirmation letters' package is what notifies its households (DESIGN).
NOTIFYING_PURPOSE = "confirmation-mailing"


def record(
    conn: Connection,
    package_id: str,
    event: Event | str,
    *,
    holder: str,
    at: datetime,
    location: str | None = None,
    note: str | None = None,
    actor: str,
    now: datetime,
    incident: int | None = None,
) -> int:
    """Append one event to a package's timeline inside the caller's transaction; returns the event's id.

    The package row is locked first, so two recorders of the same package take turns and each sees the
    other's event before checking its own. One audit row names the event and nothing the recorder typed.
    ``lost`` needs the ``incident`` it belongs to and, for a tethered package, the revocation already made.
    """
    event = parse_event(event)
    at_utc, now_utc = _aware("at", at), _aware("now", now)
    texts = _clean_texts(holder=holder, location=location, note=note)
    package = _lock_package(conn, package_id)
    latest = _latest(conn, package_id)
    check_next(package_id, Event(latest.event) if latest is not None else None, event)
    _check_loss(package, event, incident)
    _check_may_go_out(conn, package, event)
    _check_time(at_utc, now_utc, latest)
    event_id = conn.execute(
        insert(CustodyEvent).values(
            package_id=package_id,
            event=str(event),
            at=at_utc,
            recorded_at=now_utc,
            recorded_by=actor,
            **texts,
        )
    ).inserted_primary_key[0]
    details: dict[str, object] = {"event": str(event)} | ({"incident": incident} if event is Event.LOST else {})
    audit.append(conn, f"custody.{event}", "package", package_id, details, actor=actor, now=now_utc)
    if event is Event.HANDED_OVER and package.purpose == NOTIFYING_PURPOSE:
        notified = mark_notified(conn, package_id, now=now_utc)
        audit.append(
            conn, "programme.notified", "package", package_id, {"households": notified}, actor=actor, now=now_utc
        )
    return int(event_id)


def record_event(
    engine: Engine,
    package_id: str,
    event: Event | str,
    *,
    holder: str,
    at: datetime | None = None,
    location: str | None = None,
    note: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> int:
    """:func:`record` in a transaction of its own; ``at`` defaults to now, ``actor`` to the OS user."""
    now = now or utcnow()
    with transaction(engine) as conn:
        return record(
            conn,
            package_id,
            event,
            holder=holder,
            at=at or now,
            location=location,
            note=note,
            actor=actor or audit.current_actor(),
            now=now,
        )


def current_state(conn: Connection, package_id: str) -> Event | None:
    """The package's latest event (by when it happened, then by when it was recorded); None if none."""
    latest = _latest(conn, package_id)
    return Event(latest.event) if latest is not None else None


def unlock_allowed(conn: Connection, package_id: str) -> bool:
    """Whether custody lets the key service release the package's identity (revocation is checked apart):
    in an unlockable state, and never lost, whatever was recorded after (found, returned, …)."""
    return current_state(conn, package_id) in UNLOCKABLE and not ever_lost(conn, package_id)


def ever_lost(conn: Connection, package_id: str) -> bool:
    """A package once lost may have been copied: it never goes out or opens again (re-issue by sealing anew)."""
    query = select(CustodyEvent.id).where(CustodyEvent.package_id == package_id, CustodyEvent.event == Event.LOST)
    return conn.execute(query.limit(1)).first() is not None


def timeline(engine: Engine, package_id: str) -> list[dict[str, Any]]:
    """Every event of one package, oldest first, times as aware UTC datetimes; an unknown package is refused."""
    with engine.connect() as conn:
        _require_package(conn, package_id)
        rows = conn.execute(
            select(
                CustodyEvent.id,
                CustodyEvent.event,
                CustodyEvent.at,
                CustodyEvent.holder,
                CustodyEvent.location,
                CustodyEvent.note,
                CustodyEvent.recorded_at,
                CustodyEvent.recorded_by,
            )
            .where(CustodyEvent.package_id == package_id)
            .order_by(*_ORDER)
        ).mappings()
        return [
            {**row, "event": Event(row["event"]), "at": as_utc(row["at"]), "recorded_at": as_utc(row["recorded_at"])}
            for row in rows
        ]


def overdue(engine: Engine, *, now: datetime) -> list[dict[str, Any]]:
    """Packages past their expiry that are neither returned nor destroyed, the longest overdue first.

    A lost package is overdue too and says so (``lost``); so is a found one not yet returned, and a
    package with no custody record at all (``state`` None). One set-based query, however many packages.
    """
    now_utc = _aware("now", now)
    latest = latest_events(Package.expires_at < now_utc)
    query = (
        select(
            Package.id,
            Package.purpose,
            Package.expires_at,
            Package.revoked_at,
            Recipient.name.label("recipient"),
            latest.c.event,
            latest.c.holder,
            latest.c.at,
        )
        .join(Recipient, Recipient.id == Package.recipient_id)
        .outerjoin(latest, latest.c.package_id == Package.id)
        .where(Package.expires_at < now_utc)
        .where(or_(latest.c.event.is_(None), latest.c.event.not_in([str(e) for e in ACCOUNTED_FOR])))
        .order_by(Package.expires_at, Package.id)
    )
    with engine.connect() as conn:
        return [_overdue_entry(row, now_utc) for row in conn.execute(query)]


def latest_events(*package_conditions: ColumnElement[bool]) -> Subquery:
    """The latest event of each package meeting the conditions, ranked in SQL (window function).

    Columns ``package_id``, ``event``, ``holder``, ``at``: one row per package that has any event.
    """
    recency = (
        func.row_number()
        .over(partition_by=CustodyEvent.package_id, order_by=[c.desc() for c in _ORDER])
        .label("recency")
    )
    ranked = (
        select(CustodyEvent.package_id, CustodyEvent.event, CustodyEvent.holder, CustodyEvent.at, recency)
        .join(Package, Package.id == CustodyEvent.package_id)
        .where(*package_conditions)
        .subquery()
    )
    return select(ranked).where(ranked.c.recency == 1).subquery()


def _overdue_entry(row: Row, now_utc: datetime) -> dict[str, Any]:
    expires_at = as_utc(row.expires_at)
    state = Event(row.event) if row.event else None
    return {
        "package_id": row.id,
        "purpose": row.purpose,
        "recipient": row.recipient,
        "expires_at": expires_at,
        "days_overdue": (now_utc - expires_at) // timedelta(days=1),
        "state": state,
        "holder": row.holder,
        "since": as_utc(row.at) if row.at else None,
        "lost": state is Event.LOST,
        "revoked": row.revoked_at is not None,
    }


def _lock_package(conn: Connection, package_id: str) -> Row:
    """Lock the package row (FOR UPDATE; SQLite's IMMEDIATE transaction already serializes writers)."""
    columns = (Package.id, Package.revoked_at, Package.purpose, Package.mode)
    package = conn.execute(select(*columns).where(Package.id == package_id).with_for_update()).first()
    if package is None:
        raise CustodyError(f"package {package_id}: no such package")
    return package


def _require_package(conn: Connection, package_id: str) -> None:
    if conn.execute(select(Package.id).where(Package.id == package_id)).first() is None:
        raise CustodyError(f"package {package_id}: no such package")


def _latest(conn: Connection, package_id: str) -> Row | None:
    return conn.execute(
        select(CustodyEvent.event, CustodyEvent.at)
        .where(CustodyEvent.package_id == package_id)
        .order_by(*(c.desc() for c in _ORDER))
        .limit(1)
    ).first()


def _check_loss(package: Row, event: Event, incident: int | None) -> None:
    """Lost means revoked: a loss is recorded only with its incident, after a tethered package was revoked."""
    if event is not Event.LOST:
        return
    if incident is None:
        raise CustodyError(
            f"package {package.id}: a loss is recorded with `civicseal custody record --event lost` or"
            " `civicseal incident open` (civicseal.incident.service.record_loss), which revoke it and open an incident"
        )
    if package.mode == "tethered" and package.revoked_at is None:
        raise CustodyError(f"package {package.id} must be revoked before it is recorded lost (incident {incident})")


def _check_may_go_out(conn: Connection, package: Row, event: Event) -> None:
    """A revoked or once-lost package stays with the city: handing it over again would only put it at risk."""
    if event is not Event.HANDED_OVER:
        return
    if package.revoked_at is not None:
        raise CustodyError(f"package {package.id} is revoked: it may be returned or destroyed, not handed over")
    if ever_lost(conn, package.id):
        raise CustodyError(
            f"package {package.id} was lost once: it may be returned or destroyed, not handed over;"
            " seal a new package instead"
        )


def _check_time(at: datetime, now: datetime, latest: Row | None) -> None:
    """Events are recorded in the order they happened, and none happens in the future."""
    if at > now + CLOCK_SKEW:
        raise CustodyError(f"event dated {for_people(at)} is in the future (beyond {_minutes(CLOCK_SKEW)} minutes)")
    if latest is not None and at < (previous := as_utc(latest.at)):
        raise CustodyError(
            f"event dated {for_people(at)} is before the latest event ({latest.event} at {for_people(previous)});"
            " events are recorded in the order they happened"
        )


def _clean_texts(**fields: str | None) -> dict[str, str | None]:
    """Trimmed free text within the column limits; the holder must be named. Values are never quoted back."""
    cleaned = {name: (value.strip() or None) if value is not None else None for name, value in fields.items()}
    if not cleaned["holder"]:
        raise CustodyError("holder: who holds the package must be named")
    for name, value in cleaned.items():
        if value is not None and len(value) > FIELD_LIMITS[name]:
            raise CustodyError(f"{name}: at most {FIELD_LIMITS[name]} characters")
    return cleaned


def _aware(name: str, dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise CustodyError(f"{name}: a time with a timezone is needed (see parse_at for times people type)")
    return dt.astimezone(UTC)


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)
