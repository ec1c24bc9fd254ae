"""Create programmes and run them over the register: the entitlements are the programme's own record.

A run only adds entitlements. It stores each new one's head and members on the reference date, so a
later register import never rewrites who was entitled, and it reports entitled households that would no
longer qualify on today's register instead of touching them.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import date, datetime

from sqlalchemy import Connection, DateTime, Engine, bindparam, func, select, text

from civicseal.audit import log as audit
from civicseal.clock import utcnow
from civicseal.programme import eligibility
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status, check_transition
from civicseal.programme.models import Entitlement, Programme, ProgrammeExclusion
from civicseal.programme.reference import new_references
from civicseal.store.bulk import analyze, insert_rows
from civicseal.store.engine import transaction

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
    """Draw reference numbers unused anywhere in the store and record them, so no two ever collide.

    Returned in the order drawn (random), recorded in key order (cheap for the b-tree). Candidates are
    checked against the store in one join, not a query per chunk.
    """
    issued: list[str] = []
    fresh: set[str] = set()
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {CANDIDATES}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {CANDIDATES} (number VARCHAR(12) PRIMARY KEY)")
    while len(issued) < count:
        candidates = [n for n in dict.fromkeys(new_references(rng, count - len(issued))) if n not in fresh]
        conn.exec_driver_sql(f"DELETE FROM {CANDIDATES}")
        insert_rows(conn, CANDIDATES, ("number",), ((n,) for n in candidates))
        taken = set(
            conn.execute(
                text(f"SELECT c.number FROM {CANDIDATES} c JOIN reference_numbers r ON r.number = c.number")
            ).scalars()
        )
        new = [n for n in candidates if n not in taken]
        fresh.update(new)
        issued.extend(new)
    insert_rows(conn, "reference_numbers", ("number", "kind"), ((n, kind) for n in sorted(issued)))
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
        new_count, no_longer = eligibility.stage_new(conn, params)
        references = issue_references(conn, new_count, "entitlement", rng)
        _add_entitlements(conn, programme, references, now)
        result = RunResult(
            households=funnel.households,
            resident_on_date=funnel.resident_on_date,
            all_exempt=funnel.all_exempt,
            not_dependants_only=funnel.not_dependants_only,
            not_paid_before=funnel.not_paid_before,
            entitled=funnel.not_paid_before,
            total_amount=funnel.not_paid_before * programme.amount,
            members_without_tax_row=funnel.members_without_tax_row,
            new_entitlements=new_count,
            no_longer_qualifying=no_longer,
        )
        audit.append(conn, "programme.run", "programme", programme.id, result.as_dict(), actor=actor, now=now)
    return result


def _add_entitlements(conn: Connection, programme: Programme, references: list[str], now: datetime) -> None:
    """One statement: the staged new households, in household-code order, each with the next reference."""
    if not references:
        return
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {REFS}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {REFS} (n INTEGER PRIMARY KEY, number VARCHAR(12) NOT NULL)")
    insert_rows(conn, REFS, ("n", "number"), enumerate(references, 1))
    analyze(conn, REFS, eligibility.NEW)
    statement = text(
        "INSERT INTO entitlements (programme_id, household_code, head_resident_code, reference_number, status,"
        " amount, created_at, updated_at)"
        " SELECT :programme, q.household_code, q.head, r.number, :status, :amount, :now, :now"
        f" FROM {eligibility.NEW} q JOIN {REFS} r ON r.n = q.n"
    ).bindparams(bindparam("now", type_=DateTime(timezone=True)))
    conn.execute(
        statement,
        {"programme": programme.id, "status": Status.ELIGIBLE.value, "amount": programme.amount, "now": now},
    )
    # Members are frozen for the entitlements this run created.
    conn.execute(
        text(
            "INSERT INTO entitlement_members (entitlement_id, resident_code)"
            f" SELECT e.id, m.resident_code FROM {eligibility.NEW} q"
            " JOIN entitlements e ON e.programme_id = :programme AND e.household_code = q.household_code"
            f" JOIN {eligibility.MEMBERS} m ON m.household_code = q.household_code"
        ),
        {"programme": programme.id},
    )


REFS = "cs_run_references"
CANDIDATES = "cs_run_reference_candidates"


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
