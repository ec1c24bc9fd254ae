"""Opening and closing incidents: "the USB stick is gone" becomes a record, a custody event and a revocation.

:func:`record_loss` is the one decision of a loss, whichever way it is reported (``incident open``,
``custody record --event lost``, a Python caller): in one transaction, a tethered package is revoked,
custody records ``lost``, and an incident is opened — or, when the package already has an open one (lost
again after being found), the loss joins it. There is no moment at which the loss is on record but the
package still opens. The decision lives here, above ``custody`` and ``keys``, because it needs all three;
custody refuses a ``lost`` that does not come with its incident and revocation. A package already revoked
stays revoked; the incident then records that it revoked nothing (``revoked_at`` None) and the report uses
the package's own revocation time.

Free text (who reported, the circumstances, the outcome) is kept in the incident row only, never in the
audit log and never quoted back in an error.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, insert, select, update

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.clock import as_utc, utcnow
from civicseal.custody import service as custody
from civicseal.custody.errors import CustodyError
from civicseal.custody.models import CustodyEvent
from civicseal.errors import CivicsealError
from civicseal.incident.errors import IncidentError
from civicseal.incident.models import Incident
from civicseal.keys.evidence import anchor
from civicseal.keys.revocation import revoke_in
from civicseal.keys.trust import load_trusted
from civicseal.ledger.models import Package
from civicseal.store.engine import transaction
from civicseal.store.home import Home

MAX_REPORTED_BY: Final = 100
MAX_TEXT: Final = 2000  # circumstances and outcome
CLOCK_SKEW: Final = fmt.CLOCK_SKEW  # a time typed on a slightly fast clock is not "in the future"
CLOSED_STATES: Final = frozenset({custody.Event.LOST, custody.Event.DESTROYED})  # cannot be lost (again)


@dataclass(frozen=True)
class IncidentRecord:
    """One incident as the store holds it; times are aware UTC."""

    id: int
    package_id: str
    lost_at: datetime
    reported_at: datetime
    reported_by: str
    circumstances: str
    opened_at: datetime
    opened_by: str
    revoked_at: datetime | None  # when this incident revoked the package; None if it revoked nothing
    found_at: datetime | None
    outcome: str | None
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def as_dict(self) -> dict[str, Any]:
        """Stable snake_case keys, times as RFC 3339 UTC."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = fmt.rfc3339(value)
        data["open"] = self.is_open
        return data


@dataclass(frozen=True)
class Loss:
    """What recording a loss did."""

    incident_id: int
    opened: bool  # a new incident; False: the loss joined the package's open incident
    revoked_now: bool
    event_id: int  # the custody event ``lost``

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Opened:
    """What opening an incident did."""

    incident_id: int
    package_id: str
    mode: str
    revoked_now: bool  # this incident revoked the package
    revoked: bool  # the package is revoked (now or earlier)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean_text(name: str, value: str, limit: int, *, multiline: bool) -> str:
    """Trimmed, non-empty text within ``limit``, without control characters (newline allowed if multiline)."""
    value = (value or "").replace("\r\n", "\n").strip()
    if not value:
        raise IncidentError(f"{name}: must not be empty")
    if len(value) > limit:
        raise IncidentError(f"{name}: at most {limit} characters")
    allowed = {"\n"} if multiline else set()
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise IncidentError(f"{name}: no control characters" + (" except newlines" if multiline else ""))
    return value


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise IncidentError(f"{name}: a time with a timezone is needed")
    return as_utc(value)


def verified_file(home: Home, path: Path) -> fmt.SealedPackage:
    """A package file whose framing, city signature and payload hash check out: byte for byte what was sealed.

    Expiry is not checked: a lost package is reported whether or not it has expired since.
    """
    try:
        pkg = fmt.read_package(path)
        fmt.check_signature(pkg, load_trusted(home.path))
        fmt.check_canonical(pkg)
        fmt.check_manifest_fields(pkg)
        fmt.check_payload_hash(pkg)
    except CivicsealError as exc:
        raise IncidentError(f"{path}: not a package this city signed ({exc})") from None
    return pkg


def open_incident(
    home: Home,
    *,
    package_id: str | None = None,
    found_file: Path | None = None,
    lost_at: datetime,
    reported_at: datetime,
    reported_by: str,
    circumstances: str,
    now: datetime | None = None,
    actor: str | None = None,
) -> int:
    """Record a lost package: the incident, custody ``lost`` and (tethered) the revocation, in one transaction.

    Exactly one of ``package_id`` and ``found_file`` names the package; a found file must be signed by the
    city and recorded in this store, byte for byte the manifest the city sealed. Returns the incident's id
    (:func:`describe_opened` says what opening it did).
    """
    if (package_id is None) == (found_file is None):
        raise IncidentError("name the package by its id or by a found .cseal file, not both and not neither")
    now = as_utc(now or utcnow())
    actor = actor or audit.current_actor()
    lost_at, reported_at = _aware("lost at", lost_at), _aware("reported at", reported_at)
    if lost_at > reported_at:
        raise IncidentError("the loss must be reported after it happened (lost at is after reported at)")
    if reported_at > now + CLOCK_SKEW:
        raise IncidentError("reported at is in the future")
    reported_by = clean_text("reported by", reported_by, MAX_REPORTED_BY, multiline=False)
    circumstances = clean_text("circumstances", circumstances, MAX_TEXT, multiline=True)
    found_manifest = None
    if found_file is not None:
        found = verified_file(home, found_file)
        package_id, found_manifest = found.package_id, found.manifest_bytes
    assert package_id is not None
    with transaction(home.engine) as conn:
        if found_manifest is not None:
            manifest = conn.execute(select(Package.manifest).where(Package.id == package_id)).scalar_one_or_none()
            if manifest is not None and bytes(manifest) != found_manifest:
                raise IncidentError(f"{found_file}: its manifest differs from the one this city recorded")
        loss = record_loss(
            conn, package_id, lost_at=lost_at, reported_at=reported_at, reported_by=reported_by,
            circumstances=circumstances, now=now, actor=actor,
        )  # fmt: skip
    anchor(home, now=now)  # the loss and its revocation are on record outside the database at once
    return loss.incident_id


def record_loss(
    conn: Connection,
    package_id: str,
    *,
    lost_at: datetime,
    reported_at: datetime,
    reported_by: str,
    circumstances: str,
    holder: str | None = None,
    location: str | None = None,
    note: str | None = None,
    now: datetime,
    actor: str,
) -> Loss:
    """Decide a loss inside the caller's transaction: revoke (tethered), custody ``lost``, incident opened or joined.

    ``holder`` is who last had the package (default: the holder of its latest custody event). A package
    already lost or destroyed is refused, naming its incident.
    """
    package = _lock_package(conn, package_id)
    _check_can_be_lost(conn, package_id)
    still_open = _open_incident(conn, package_id)
    opened = still_open is None
    if still_open is None:
        incident_id = _insert(conn, package_id, lost_at, reported_at, reported_by, circumstances, now, actor)
    else:
        incident_id = still_open
    revoked_now = package.mode == fmt.Mode.TETHERED and package.revoked_at is None
    if revoked_now:
        revoke_in(conn, package_id, f"incident {incident_id}: reported lost", now=now, actor=actor)
        conn.execute(
            update(Incident).where(Incident.id == incident_id, Incident.revoked_at.is_(None)).values(revoked_at=now)
        )
    try:
        event_id = custody.record(
            conn, package_id, custody.Event.LOST, holder=holder or _last_holder(conn, package_id), at=lost_at,
            location=location, note=note or f"incident {incident_id}", actor=actor, now=now, incident=incident_id,
        )  # fmt: skip
    except CustodyError as exc:
        raise IncidentError(str(exc)) from None
    details = {"incident": incident_id, "mode": package.mode, "revoked": revoked_now}
    action = "incident.open" if opened else "incident.lost-again"
    audit.append(conn, action, "package", package_id, details, actor=actor, now=now)
    return Loss(incident_id, opened, revoked_now, event_id)


LOSS_IN_CUSTODY = "recorded lost in the chain of custody"


def record_lost_event(
    home: Home,
    package_id: str,
    *,
    holder: str,
    at: datetime | None = None,
    location: str | None = None,
    note: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> Loss:
    """A loss as custody staff record it (``custody record --event lost``): reported now, by whoever records it.

    The circumstances are the note (or that it was recorded in custody); the DPO completes the incident.
    """
    now = as_utc(now or utcnow())
    actor = actor or audit.current_actor()
    at = _aware("lost at", at) if at is not None else now
    if at > now + CLOCK_SKEW:
        raise IncidentError("lost at is in the future")
    circumstances = clean_text("note", note or LOSS_IN_CUSTODY, MAX_TEXT, multiline=True)
    with transaction(home.engine) as conn:
        loss = record_loss(
            conn, package_id, lost_at=at, reported_at=now, reported_by=actor[:MAX_REPORTED_BY],
            circumstances=circumstances, holder=holder, location=location, note=note, now=now, actor=actor,
        )  # fmt: skip
    anchor(home, now=now)  # the loss and its revocation are on record outside the database at once
    return loss


def describe_opened(engine: Engine, incident_id: int) -> Opened:
    """What opening the incident did to its package: revoked by it, revoked before, or not revocable."""
    incident = get_incident(engine, incident_id)
    with engine.connect() as conn:
        mode, revoked_at = conn.execute(
            select(Package.mode, Package.revoked_at).where(Package.id == incident.package_id)
        ).one()
    revoked_now = incident.revoked_at is not None
    return Opened(incident_id, incident.package_id, mode, revoked_now, revoked_at is not None)


def close_incident(
    home: Home,
    incident_id: int,
    *,
    found_at: datetime | None,
    outcome: str,
    holder: str | None = None,
    now: datetime | None = None,
    actor: str | None = None,
) -> IncidentRecord:
    """Close an incident: custody ``found`` at ``found_at`` (None: never found), and the outcome.

    A found package stays revoked: it goes back to the city or is destroyed, and is re-issued only by
    sealing a new package. ``holder`` is who has it once found (default: the city, the issuer).
    """
    now = as_utc(now or utcnow())
    actor = actor or audit.current_actor()
    outcome = clean_text("outcome", outcome, MAX_TEXT, multiline=True)
    found = _aware("found at", found_at) if found_at is not None else None
    holder = clean_text("holder", holder or home.config.issuer, custody.FIELD_LIMITS["holder"], multiline=False)
    with transaction(home.engine) as conn:
        query = select(Incident.id, Incident.package_id, Incident.lost_at, Incident.closed_at)
        row = conn.execute(query.where(Incident.id == incident_id).with_for_update()).first()
        if row is None:
            raise IncidentError(f"no incident {incident_id}")
        if row.closed_at is not None:
            raise IncidentError(f"incident {incident_id} was closed at {fmt.rfc3339(as_utc(row.closed_at))}")
        if found is not None:
            if found < as_utc(row.lost_at):
                raise IncidentError("found at is before the package was lost")
            if found > now + CLOCK_SKEW:
                raise IncidentError("found at is in the future")
            _record_found(conn, row.package_id, found, holder, incident_id, actor, now)
        values = {"found_at": found, "outcome": outcome, "closed_at": now}
        conn.execute(update(Incident).where(Incident.id == incident_id).values(**values))
        details = {"incident": incident_id, "found": found is not None}
        audit.append(conn, "incident.close", "package", row.package_id, details, actor=actor, now=now)
    return get_incident(home.engine, incident_id)


def get_incident(engine: Engine, incident_id: int) -> IncidentRecord:
    """One incident, or IncidentError."""
    with engine.connect() as conn:
        row = conn.execute(select(Incident.__table__).where(Incident.id == incident_id)).mappings().first()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    return _record(row)


def list_incidents(engine: Engine) -> list[IncidentRecord]:
    """Every incident, the most recently opened first."""
    with engine.connect() as conn:
        rows = conn.execute(select(Incident.__table__).order_by(Incident.opened_at.desc(), Incident.id.desc()))
        return [_record(r) for r in rows.mappings()]


def _record(row: Any) -> IncidentRecord:
    values = dict(row)
    for key, value in values.items():
        if isinstance(value, datetime):
            values[key] = as_utc(value)
    return IncidentRecord(**values)


def _lock_package(conn: Connection, package_id: str) -> Any:
    columns = (Package.id, Package.mode, Package.revoked_at, Package.manifest)
    package = conn.execute(select(*columns).where(Package.id == package_id).with_for_update()).first()
    if package is None:
        raise IncidentError(f"package {package_id}: no such package in this store")
    return package


def _check_can_be_lost(conn: Connection, package_id: str) -> None:
    """A package already lost (or destroyed) cannot be lost again: its incident is where to look."""
    state = custody.current_state(conn, package_id)
    if state in CLOSED_STATES:
        known = conn.execute(
            select(Incident.id).where(Incident.package_id == package_id).order_by(Incident.id.desc()).limit(1)
        ).scalar_one_or_none()
        then = f" (incident {known}: `civicseal incident report {known}`)" if known is not None else ""
        raise IncidentError(f"package {package_id} is already {state}{then}")


def _open_incident(conn: Connection, package_id: str) -> int | None:
    return conn.execute(
        select(Incident.id).where(Incident.package_id == package_id, Incident.closed_at.is_(None)).limit(1)
    ).scalar_one_or_none()


def _last_holder(conn: Connection, package_id: str) -> str:
    """Who last had the package: custody's ``lost`` names them (DESIGN: for lost, who last had it)."""
    holder = conn.execute(
        select(CustodyEvent.holder)
        .where(CustodyEvent.package_id == package_id)
        .order_by(CustodyEvent.at.desc(), CustodyEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return holder or "unknown"


def _insert(
    conn: Connection,
    package_id: str,
    lost_at: datetime,
    reported_at: datetime,
    reported_by: str,
    circumstances: str,
    now: datetime,
    actor: str,
) -> int:
    result = conn.execute(
        insert(Incident).values(
            package_id=package_id,
            lost_at=lost_at,
            reported_at=reported_at,
            reported_by=reported_by,
            circumstances=circumstances,
            opened_at=now,
            opened_by=actor[:100],
        )
    )
    return int(result.inserted_primary_key[0])


def _record_found(
    conn: Connection, package_id: str, found: datetime, holder: str, incident_id: int, actor: str, now: datetime
) -> None:
    """Custody ``found``, unless someone already recorded it by hand after the loss."""
    if custody.current_state(conn, package_id) is custody.Event.FOUND:
        return
    try:
        custody.record(
            conn, package_id, custody.Event.FOUND, holder=holder, at=found, note=f"incident {incident_id}",
            actor=actor, now=now,
        )  # fmt: skip
    except CustodyError as exc:
        raise IncidentError(str(exc)) from None
