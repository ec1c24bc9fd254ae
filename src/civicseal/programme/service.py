"""Create programmes and run them over the register: the entitlements are the programme's own record.

A run only adds entitlements. It stores each new one's head and members on the reference date, so a
later register import never rewrites who was entitled, and it reports entitled households that would no
longer qualify on today's register instead of touching them.
"""

from __future__ import annotations

import difflib
import json
import random
from dataclasses import asdict, dataclass
from datetime import date, datetime

from sqlalchemy import Connection, DateTime, Engine, RowMapping, bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from civicseal.audit import log as audit
from civicseal.clock import as_utc, utcnow
from civicseal.programme import eligibility, entitlements
from civicseal.programme.defaults import DEFAULT_MAX_MISSING_TAX
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status, check_transition
from civicseal.programme.models import Entitlement, Programme, ProgrammeExclusion, ProgrammeRun, ReferenceNumber
from civicseal.programme.reference import new_references
from civicseal.store.bulk import SCRATCH_SAMPLE, analyze, checked_once, insert_columns
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
    members_on_date: int = 0
    missing_tax_accepted: bool = False  # the run went ahead although members lacked a tax row beyond the threshold
    dry_run: bool = False
    no_longer_qualifying_references: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["no_longer_qualifying_references"] = list(self.no_longer_qualifying_references)
        return data


class MissingTaxData(ProgrammeError):
    """The tax rows for the fiscal year are missing or too few to tell exempt households from the rest."""


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
    return get_programme(conn, name).id


def get_programme(conn: Connection, name: str) -> Programme:
    """The programme of that name; an unknown name is answered with the nearest existing ones."""
    row = conn.execute(select(Programme.__table__).where(Programme.name == name)).mappings().first()
    if row is None:
        raise unknown_programme(conn, name)
    return Programme(**row)


def unknown_programme(conn: Connection, name: str) -> ProgrammeError:
    """The refusal for a programme name that does not exist, naming the closest names there are."""
    names = list(conn.execute(select(Programme.name).order_by(Programme.id)).scalars())
    if not names:
        return ProgrammeError(f"no programme named {name!r}: none exists yet (`civicseal programme create`)")
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if near:
        return ProgrammeError(f"no programme named {name!r}; did you mean {' or '.join(repr(n) for n in near)}?")
    return ProgrammeError(f"no programme named {name!r}; `civicseal programme list` shows the {len(names)} there are")


def _status_counts(conn: Connection) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    rows = conn.execute(
        select(Entitlement.programme_id, Entitlement.status, func.count()).group_by(
            Entitlement.programme_id, Entitlement.status
        )
    )
    for programme_id, status, count in rows:
        counts.setdefault(programme_id, {s.value: 0 for s in Status})[status] = count
    return counts


def _describe(programme: RowMapping, statuses: dict[str, int]) -> dict[str, object]:
    return {
        "name": programme["name"],
        "reference_date": programme["reference_date"].isoformat(),
        "fiscal_year": programme["fiscal_year"],
        "amount": programme["amount"],
        "entitlements": sum(statuses.values()),
        "statuses": statuses,
    }


def list_programmes(engine: Engine) -> list[dict[str, object]]:
    """Every programme with its entitlements counted per state."""
    with engine.connect() as conn:
        counts = _status_counts(conn)
        empty = {s.value: 0 for s in Status}
        return [
            _describe(p, counts.get(p["id"], empty))
            for p in conn.execute(select(Programme.__table__).order_by(Programme.id)).mappings()
        ]


def show_programme(engine: Engine, name: str) -> dict[str, object]:
    """A programme, its entitlements per state, and the funnel of its last run (None before the first)."""
    with engine.connect() as conn:
        programme = get_programme(conn, name)
        row = conn.execute(select(Programme.__table__).where(Programme.id == programme.id)).mappings().one()
        statuses = _status_counts(conn).get(programme.id, {s.value: 0 for s in Status})
        last = conn.execute(
            select(ProgrammeRun.at, ProgrammeRun.actor, ProgrammeRun.funnel)
            .where(ProgrammeRun.programme_id == programme.id)
            .order_by(ProgrammeRun.id.desc())
            .limit(1)
        ).first()
    shown = _describe(row, statuses)
    shown["last_run"] = None if last is None else {"at": as_utc(last.at), "actor": last.actor} | json.loads(last.funnel)
    return shown


def issue_references(conn: Connection, count: int, kind: str, rng: random.Random) -> list[str]:
    """Draw reference numbers unused anywhere in the store and record them, so no two ever collide.

    Returned in the order drawn (random), recorded in key order (cheap for the b-tree).
    """
    issued: list[str] = []
    fresh: set[str] = set()
    while len(issued) < count:
        drawn = [n for n in dict.fromkeys(new_references(rng, count - len(issued))) if n not in fresh]
        new = _record_unused(conn, drawn, kind)
        fresh.update(new)
        issued.extend(new)
    return issued


def _record_unused(conn: Connection, numbers: list[str], kind: str) -> list[str]:
    """Record those of ``numbers`` the store does not hold yet; return them in the order given.

    First all at once under a savepoint: a draw rarely meets a number in use (about 6 % of a city's runs
    meet one among 75,000 others), and the store's own key refuses one that does, so the common case costs
    no search. Only then is the draw checked against the store, a chunk of numbers a query.
    """
    unique_violation = (IntegrityError, conn.dialect.loaded_dbapi.IntegrityError)
    try:
        with conn.begin_nested():
            _record(conn, numbers, kind)
        return numbers
    except unique_violation:
        pass  # rolled back to the savepoint: nothing of this draw is recorded
    taken: set[str] = set()
    for start in range(0, len(numbers), IN_CHUNK):
        chunk = numbers[start : start + IN_CHUNK]
        taken.update(conn.execute(select(ReferenceNumber.number).where(ReferenceNumber.number.in_(chunk))).scalars())
    new = [n for n in numbers if n not in taken]
    _record(conn, new, kind)
    return new


def _record(conn: Connection, numbers: list[str], kind: str) -> None:
    """Into the store's reference numbers, in key order (cheap for the b-tree)."""
    insert_columns(conn, "reference_numbers", ("number", "kind"), [sorted(numbers), [kind] * len(numbers)])


IN_CHUNK = 5000  # numbers a collision check sends in one query, within every store's limit on parameters


def run_programme(
    engine: Engine,
    name: str,
    *,
    max_missing_tax: float = DEFAULT_MAX_MISSING_TAX,
    accept_missing_tax: bool = False,
    dry_run: bool = False,
    rng: random.Random | None = None,
    now: datetime | None = None,
    actor: str | None = None,
) -> RunResult:
    """Count the funnel and add an entitlement for each qualifying household not yet entitled.

    Refused when the fiscal year has no tax row at all, or when more than ``max_missing_tax`` of the members
    resident on D lack one — they would all count as exempt — unless ``accept_missing_tax``. ``dry_run``
    counts everything and writes nothing.
    """
    if not 0 <= max_missing_tax <= 1:
        raise ProgrammeError("max missing tax: a share from 0 to 1 (0.25 is 25 %)")
    rng = rng or random.SystemRandom()
    now = now or utcnow()
    actor = actor or audit.current_actor()
    with engine.connect() if dry_run else transaction(engine) as conn:
        result = _run(conn, name, max_missing_tax, accept_missing_tax, dry_run, rng, now, actor)
        if dry_run:
            conn.rollback()  # temporary tables only, but nothing at all stays
    return result


def _check_tax_data(funnel: eligibility.Funnel, fiscal_year: int, max_missing_tax: float, accept: bool) -> bool:
    """Whether the run goes ahead only because missing tax data was accepted; refused when it was not."""
    if not funnel.tax_rows_for_year:
        problem = f"the register holds no tax row for fiscal year {fiscal_year}: every member would count as exempt"
    elif funnel.members_on_date and funnel.members_without_tax_row / funnel.members_on_date > max_missing_tax:
        share = funnel.members_without_tax_row / funnel.members_on_date
        problem = (
            f"{funnel.members_without_tax_row:,} of {funnel.members_on_date:,} members resident on the reference date"
            f" ({share:.0%}) have no tax row for fiscal year {fiscal_year}, more than {max_missing_tax:.0%}:"
            " they would count as exempt"
        )
    else:
        return False
    if accept:
        return True
    raise MissingTaxData(
        f"{problem}; import the tax file for that year (or run with --accept-missing-tax if the city decides so)"
    )


def _run(
    conn: Connection,
    name: str,
    max_missing_tax: float,
    accept_missing_tax: bool,
    dry_run: bool,
    rng: random.Random,
    now: datetime,
    actor: str,
) -> RunResult:
    programme = get_programme(conn, name)
    funnel = eligibility.stage(
        conn, programme_id=programme.id, reference_date=programme.reference_date, fiscal_year=programme.fiscal_year
    )
    accepted = _check_tax_data(funnel, programme.fiscal_year, max_missing_tax, accept_missing_tax)
    params = {"d": programme.reference_date.isoformat(), "y": programme.fiscal_year, "programme": programme.id}
    new_count = eligibility.stage_new(conn, params)
    no_longer = list(
        conn.execute(text(f"{eligibility.no_longer_qualifying_sql()} ORDER BY e.reference_number"), params).scalars()
    )
    if not dry_run:
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
        no_longer_qualifying=len(no_longer),
        members_on_date=funnel.members_on_date,
        missing_tax_accepted=accepted,
        dry_run=dry_run,
        no_longer_qualifying_references=tuple(no_longer),
    )
    if not dry_run:
        figures = {k: v for k, v in result.as_dict().items() if k != "no_longer_qualifying_references"}
        conn.execute(
            insert(ProgrammeRun).values(programme_id=programme.id, at=now, actor=actor, funnel=json.dumps(figures))
        )
        audit.append(conn, "programme.run", "programme", programme.id, figures, actor=actor, now=now)
    return result


def withdraw_no_longer_qualifying(
    engine: Engine,
    name: str,
    *,
    reason: str,
    max_missing_tax: float = DEFAULT_MAX_MISSING_TAX,
    accept_missing_tax: bool = False,
    now: datetime | None = None,
    actor: str | None = None,
) -> list[str]:
    """Withdraw, in one transaction, every entitlement a run lists as no longer qualifying; return their numbers.

    Refused as a run is when tax data is missing: without it every household would seem to qualify, or not.
    """
    now = now or utcnow()
    with transaction(engine) as conn:
        programme = get_programme(conn, name)
        funnel = eligibility.stage(
            conn, programme_id=programme.id, reference_date=programme.reference_date, fiscal_year=programme.fiscal_year
        )
        _check_tax_data(funnel, programme.fiscal_year, max_missing_tax, accept_missing_tax)
        params = {"d": programme.reference_date.isoformat(), "y": programme.fiscal_year, "programme": programme.id}
        rows = conn.execute(text(eligibility.no_longer_qualifying_sql()), params).all()
        by_status: dict[str, list[int]] = {}
        for _, entitlement_id, status in rows:
            by_status.setdefault(status, []).append(entitlement_id)
        for status, ids in sorted(by_status.items()):
            entitlements.change_many(
                conn,
                ids,
                Status(status),
                Status.WITHDRAWN,
                reason=reason,
                now=now,
                actor=actor,
                object_type="programme",
                object_id=str(programme.id),
            )
    return sorted(row[0] for row in rows)


def _add_entitlements(conn: Connection, programme: Programme, references: list[str], now: datetime) -> None:
    """One statement: the staged new households, in household-code order, each with the next reference."""
    if not references:
        return
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {REFS}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {REFS} (n INTEGER PRIMARY KEY, number VARCHAR(12) NOT NULL)")
    insert_columns(conn, REFS, ("n", "number"), [list(range(1, len(references) + 1)), references])
    analyze(conn, REFS, eligibility.NEW, sample=SCRATCH_SAMPLE)
    statement = text(
        "INSERT INTO entitlements (programme_id, household_code, head_resident_code, reference_number, status,"
        " amount, created_at, updated_at)"
        " SELECT :programme, q.household_code, q.head, r.number, :status, :amount, :now, :now"
        f" FROM {eligibility.NEW} q JOIN {REFS} r ON r.n = q.n"
    ).bindparams(bindparam("now", type_=DateTime(timezone=True)))
    with checked_once(conn, ("entitlements", "entitlement_members"), adding=len(references)):
        conn.execute(
            statement,
            {"programme": programme.id, "status": Status.ELIGIBLE.value, "amount": programme.amount, "now": now},
        )
        # Members are frozen for the entitlements this run created.
        conn.execute(
            text(f"INSERT INTO entitlement_members (entitlement_id, resident_code) {eligibility.members_sql()}"),
            {"programme": programme.id, "d": programme.reference_date.isoformat()},
        )


REFS = "cs_run_references"


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
