"""Create programmes and run them over the register: the entitlements are the programme's own record.

A run only adds entitlements. It stores each new one's head and members on the reference date, so a
later register import never rewrites who was entitled, and it reports entitled households that would no
longer qualify on today's register instead of touching them.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Engine, func, select, text

from civicseal.audit import log as audit
from civicseal.clock import utcnow
from civicseal.programme import eligibility
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status, check_transition
from civicseal.programme.models import Entitlement, Programme, ProgrammeExclusion, ReferenceNumber
from civicseal.programme.reference import new_reference
from civicseal.store.engine import placeholder, transaction

MAX_AMOUNT = 10**9


@dataclass(frozen=True)
class RunResult:
    households: int
    resident_on_date: int
    all_exempt: int
    not_dependants_only: int
    not_paid_before: int
    entitled: int
    total_amount: int
    members_without_tax_row: int
    new_entitlements: int
    no_longer_qualifying: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def create_programme(
    engine: Engine,
    name: str,
    *,
    reference_date: date,
    fiscal_year: int,
    amount: int,
    exclude: tuple[str, ...] = (),
    now: datetime | None = None,
    actor: str | None = None,
) -> int:
    if not name.strip() or len(name) > 100:
        raise ProgrammeError("programme name: 1 to 100 characters")
    if not 0 < amount <= MAX_AMOUNT:
        raise ProgrammeError(f"amount: a whole number of yen from 1 to {MAX_AMOUNT}")
    now = now or utcnow()
    with transaction(engine) as conn:
        if conn.execute(select(Programme.id).where(Programme.name == name)).first():
            raise ProgrammeError(f"programme {name!r} exists already")
        excluded_ids = [_programme_id(conn, earlier) for earlier in exclude]
        programme_id = conn.execute(
            Programme.__table__.insert()
            .values(name=name, reference_date=reference_date, fiscal_year=fiscal_year, amount=amount, created_at=now)
            .returning(Programme.id)
        ).scalar_one()
        for excluded_id in excluded_ids:
            conn.execute(
                ProgrammeExclusion.__table__.insert().values(programme_id=programme_id, excluded_id=excluded_id)
            )
        audit.append(
            conn,
            "programme.create",
            "programme",
            programme_id,
            {"fiscal_year": fiscal_year, "amount": amount, "excluded_programmes": len(excluded_ids)},
            actor=actor,
            now=now,
        )
    return programme_id


def _programme_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(Programme.id).where(Programme.name == name)).scalar_one_or_none()
    if found is None:
        raise ProgrammeError(f"no programme named {name!r}")
    return found


def get_programme(conn: Connection, name: str) -> Programme:
    row = conn.execute(select(Programme).where(Programme.name == name)).mappings().first()
    if row is None:
        raise ProgrammeError(f"no programme named {name!r}")
    return Programme(**row)


def list_programmes(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        counts = dict(
            conn.execute(select(Entitlement.programme_id, func.count()).group_by(Entitlement.programme_id)).all()
        )
        return [
            {
                "name": p.name,
                "reference_date": p.reference_date.isoformat(),
                "fiscal_year": p.fiscal_year,
                "amount": p.amount,
                "entitlements": counts.get(p.id, 0),
            }
            for p in conn.execute(select(Programme).order_by(Programme.id)).scalars()
        ]


def issue_references(conn: Connection, count: int, kind: str, rng: random.Random) -> list[str]:
    """Draw reference numbers unused anywhere in the store and record them, so no two ever collide."""
    if count == 0:
        return []
    issued: list[str] = []
    fresh: set[str] = set()
    while len(issued) < count:
        wanted = count - len(issued)
        candidates = {new_reference(rng) for _ in range(wanted)} - fresh
        taken: set[str] = set()
        listed = sorted(candidates)
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            taken |= set(
                conn.execute(select(ReferenceNumber.number).where(ReferenceNumber.number.in_(chunk))).scalars()
            )
        new = [c for c in listed if c not in taken][:wanted]
        fresh.update(new)
        issued.extend(new)
    rng.shuffle(issued)
    mark = placeholder(conn)
    conn.exec_driver_sql(
        f"INSERT INTO reference_numbers (number, kind) VALUES ({mark}, {mark})", [(n, kind) for n in issued]
    )
    return issued


def run_programme(
    engine: Engine,
    name: str,
    *,
    rng: random.Random | None = None,
    now: datetime | None = None,
    actor: str | None = None,
) -> RunResult:
    """Count the funnel and add an entitlement for each qualifying household not yet entitled."""
    rng = rng or random.SystemRandom()
    now = now or utcnow()
    with transaction(engine) as conn:
        programme = get_programme(conn, name)
        funnel = eligibility.stage(
            conn, programme_id=programme.id, reference_date=programme.reference_date, fiscal_year=programme.fiscal_year
        )
        params = {"d": programme.reference_date.isoformat(), "y": programme.fiscal_year, "programme": programme.id}
        qualifying = conn.execute(text(eligibility.qualifying_households_sql()), params).all()
        existing = set(
            conn.execute(select(Entitlement.household_code).where(Entitlement.programme_id == programme.id)).scalars()
        )
        qualifying_codes = {household for household, _ in qualifying}
        new = [(household, head) for household, head in qualifying if household not in existing]
        new.sort()
        references = issue_references(conn, len(new), "entitlement", rng)
        if new:
            conn.execute(
                Entitlement.__table__.insert(),
                [
                    {
                        "programme_id": programme.id,
                        "household_code": household,
                        "head_resident_code": head,
                        "reference_number": ref,
                        "status": Status.ELIGIBLE.value,
                        "amount": programme.amount,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for (household, head), ref in zip(new, references, strict=True)
                ],
            )
        # Members are frozen for the entitlements this run created: those that have none yet.
        conn.execute(
            text(
                "INSERT INTO entitlement_members (entitlement_id, resident_code)"
                f" SELECT e.id, m.resident_code FROM entitlements e JOIN {eligibility.MEMBERS} m"
                " ON m.household_code = e.household_code WHERE e.programme_id = :programme"
                " AND NOT EXISTS (SELECT 1 FROM entitlement_members em WHERE em.entitlement_id = e.id)"
            ),
            {"programme": programme.id},
        )
        result = RunResult(
            households=funnel.households,
            resident_on_date=funnel.resident_on_date,
            all_exempt=funnel.all_exempt,
            not_dependants_only=funnel.not_dependants_only,
            not_paid_before=funnel.not_paid_before,
            entitled=funnel.not_paid_before,
            total_amount=funnel.not_paid_before * programme.amount,
            members_without_tax_row=funnel.members_without_tax_row,
            new_entitlements=len(new),
            no_longer_qualifying=len(existing - qualifying_codes),
        )
        audit.append(conn, "programme.run", "programme", programme.id, result.as_dict(), actor=actor, now=now)
    return result


def mark_notified(conn: Connection, package_id: str, *, now: datetime) -> int:
    """Households whose confirmation letters left the city move eligible → notified, in one statement."""
    check_transition(Status.ELIGIBLE, Status.NOTIFIED)
    result = conn.execute(
        text(
            "UPDATE entitlements SET status = :notified, updated_at = :now"
            " WHERE status = :eligible AND programme_id = (SELECT programme_id FROM packages WHERE id = :package)"
            " AND household_code IN (SELECT household_code FROM package_members WHERE package_id = :package)"
        ),
        {"notified": Status.NOTIFIED.value, "eligible": Status.ELIGIBLE.value, "now": now, "package": package_id},
    )
    return result.rowcount
