"""The supervisor's view: look-ups per operator per hour, misses, locked accounts, alerts, one household's trail.

A supervisor of a contractor sees its own organization's operators only; the city's supervisors see all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine, select

from civicseal.audit import log as audit
from civicseal.audit.models import AuditEntry
from civicseal.clock import TOKYO, as_utc
from civicseal.contact.actions import NOTE_COLUMN
from civicseal.contact.errors import ContactError
from civicseal.contact.models import Alert, CallNote, ContactUser, Lookup
from civicseal.contact.users import Principal, Role
from civicseal.programme.entitlements import UnknownReference, find, history, parse_reference
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher

HOURS_SHOWN: Final = 8


@dataclass(frozen=True)
class OperatorHour:
    username: str
    hour: str  # "2026-11-27 17:00 JST"
    lookups: int
    misses: int


@dataclass(frozen=True)
class AlertRow:
    at: datetime
    kind: str
    username: str
    reference_number: str | None


@dataclass(frozen=True)
class Dashboard:
    hours: list[OperatorHour]
    locked: list[tuple[str, str]]  # (username, why)
    alerts: list[AlertRow]


def _scope(query, principal: Principal):  # type: ignore[no-untyped-def]
    return query if principal.organization is None else query.where(ContactUser.organization == principal.organization)


def dashboard(conn: Connection, principal: Principal, *, now: datetime) -> Dashboard:
    principal.require(Role.SUPERVISOR, Role.ADMIN)
    since = now - timedelta(hours=HOURS_SHOWN)
    rows = conn.execute(
        _scope(
            select(ContactUser.username, Lookup.at, Lookup.outcome)
            .join(ContactUser, ContactUser.id == Lookup.user_id)
            .where(Lookup.at > since),
            principal,
        )
    ).all()
    looked, missed = Counter(), Counter()
    for username, at, outcome in rows:
        key = (username, as_utc(at).astimezone(TOKYO).strftime("%Y-%m-%d %H:00 JST"))
        looked[key] += 1
        missed[key] += outcome == "miss"
    hours = [OperatorHour(u, h, looked[(u, h)], missed[(u, h)]) for u, h in sorted(looked, key=lambda k: (k[1], k[0]))]
    locked = conn.execute(
        _scope(
            select(ContactUser.username, ContactUser.locked_reason).where(ContactUser.locked_at.is_not(None)), principal
        )
    ).all()
    alerts = conn.execute(
        _scope(
            select(Alert.at, Alert.kind, ContactUser.username, Alert.reference_number)
            .join(ContactUser, ContactUser.id == Alert.user_id)
            .order_by(Alert.id.desc())
            .limit(50),
            principal,
        )
    ).all()
    return Dashboard(
        hours[::-1], [(u, why or "") for u, why in locked], [AlertRow(as_utc(a), k, u, r) for a, k, u, r in alerts]
    )


@dataclass(frozen=True)
class TrailEntry:
    at: str
    actor: str
    action: str
    details: str


@dataclass(frozen=True)
class HouseholdTrail:
    reference_number: str
    audit: list[TrailEntry]
    notes: list[tuple[datetime, str, str]]  # (at, call reference, text)
    status_history: list[tuple[datetime, str, str, str]]  # (at, from, to, actor)


def household_trail(
    engine: Engine, cipher: FieldCipher, principal: Principal, reference: str, *, now: datetime
) -> HouseholdTrail:
    """Every audit row naming the household's number (look-ups, alerts, changes), its notes and its history.

    Reading a household's trail is itself a look-up of sorts, and audited.
    """
    principal.require(Role.SUPERVISOR)
    with transaction(engine) as conn:
        return _trail(conn, cipher, principal, reference, now)


def _trail(
    conn: Connection, cipher: FieldCipher, principal: Principal, reference: str, now: datetime
) -> HouseholdTrail:
    try:
        number = parse_reference(reference)
        ent = find(conn, number)
    except UnknownReference as exc:
        raise ContactError(str(exc)) from None
    audit.append(
        conn,
        "contact.trail-viewed",
        "entitlement",
        number,
        {"supervisor": principal.username},
        actor=principal.actor,
        now=now,
    )
    audit_rows = conn.execute(
        select(AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.details)
        .where(AuditEntry.object_id == number)
        .order_by(AuditEntry.seq)
    ).all()
    notes = conn.execute(
        select(CallNote.at, CallNote.call_reference, CallNote.note_enc)
        .where(CallNote.entitlement_id == ent["id"])
        .order_by(CallNote.id)
    ).all()
    return HouseholdTrail(
        number,
        [TrailEntry(*row) for row in audit_rows],
        [(as_utc(at), call, cipher.decrypt(enc, NOTE_COLUMN, ent["id"])) for at, call, enc in notes],
        [(as_utc(e["at"]), e["from_status"], e["to_status"], e["actor"]) for e in history(conn, ent["id"])],
    )
